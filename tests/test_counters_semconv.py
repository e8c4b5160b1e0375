"""Counters and N+1 events under both semantic-convention modes.

The contrib instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per
process, so each mode runs in a fresh interpreter: this file, run as a
script, does the work of one request (SQLite, PostgreSQL through psycopg,
Redis, an HTTP client call) and prints what the watched span and its client
spans carried, as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

MODES = {
    "old": {"db": ("db.system", "db.statement"), "http": "http.method"},
    "database,http": {"db": ("db.system.name", "db.query.text"), "http": "http.request.method"},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_counters_in_each_semconv_mode(mode: str, postgres_dsn: str, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if mode != "old":
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = mode
    run = subprocess.run(
        [sys.executable, __file__, postgres_dsn, redis_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    system_key, statement_key = MODES[mode]["db"]
    other_system = "db.system.name" if system_key == "db.system" else "db.system"
    # The mode really is the one under test: the instrumentations wrote its keys only.
    assert seen["db_keys"] and all(system_key in keys and statement_key in keys for keys in seen["db_keys"])
    assert not any(other_system in keys for keys in seen["db_keys"])
    assert seen["http_keys"] and all(MODES[mode]["http"] in keys for keys in seen["http_keys"])

    attributes = seen["attributes"]
    assert attributes["slowstack.db.count"] == len(seen["db_keys"]) == 3 + 12 + 12 + 1
    assert attributes["slowstack.http.count"] == len(seen["http_keys"]) == 2
    assert attributes["slowstack.db.duration_ms"] > 0 and attributes["slowstack.http.duration_ms"] > 0
    texts = sorted(e["db.query.text"] for e in seen["n_plus_one"])
    assert texts == ["SELECT name FROM customers WHERE id = ?", "SELECT pg_sleep(?)"]
    assert all(e["slowstack.repeat.count"] == 10 for e in seen["n_plus_one"])
    assert all("in request" in e["code.stacktrace"] for e in seen["n_plus_one"])


def request(postgres_dsn: str, redis_url: str, http_url: str) -> None:
    """One request's worth of client calls, N+1s included."""
    import sqlite3

    import psycopg
    import redis
    import requests

    connection = sqlite3.connect(":memory:")
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    cursor.execute("INSERT INTO customers VALUES (1, 'ann')")
    cursor.execute("SELECT id FROM customers")
    for _ in range(12):
        cursor.execute("SELECT name FROM customers WHERE id = ?", (1,))
    with psycopg.connect(postgres_dsn, autocommit=True) as pg:
        for _ in range(12):
            pg.execute("SELECT pg_sleep(0)")
    client = redis.Redis.from_url(redis_url)
    client.get("slowstack_semconv_probe")
    client.close()
    requests.get(http_url, timeout=10)
    requests.get(http_url, timeout=10)


def main(postgres_dsn: str, redis_url: str) -> None:
    import http.server
    import threading

    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from otel_slowstack import SlowStackProcessor, conventions

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def kind_of(span: Any) -> Any:
        return conventions.call_kind(span.attributes) if span.kind is SpanKind.CLIENT else None

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SlowStackProcessor(threshold="60s", n_plus_one=10))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for instrumentor in (SQLite3Instrumentor(), PsycopgInstrumentor(), RedisInstrumentor(), RequestsInstrumentor()):
        instrumentor.instrument(tracer_provider=provider)

    with provider.get_tracer("semconv").start_as_current_span("GET /checkout", kind=SpanKind.SERVER):
        request(postgres_dsn, redis_url, f"http://127.0.0.1:{server.server_address[1]}/")
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "GET /checkout")
    children = [s for s in spans if s is not root]
    print(
        json.dumps(
            {
                "attributes": dict(root.attributes),
                "n_plus_one": [dict(e.attributes) for e in root.events if e.name == conventions.N_PLUS_ONE_EVENT],
                "db_keys": [sorted(s.attributes) for s in children if kind_of(s) == conventions.DB],
                "http_keys": [sorted(s.attributes) for s in children if kind_of(s) == conventions.HTTP],
            }
        )
    )
    server.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:3])
