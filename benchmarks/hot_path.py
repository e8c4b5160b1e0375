"""1. Hot path: what a span that never becomes slow pays for otel-slowstack.

Same SDK, same no-op exporter behind a BatchSpanProcessor, with and without
SlowStackProcessor (threshold 60 s, so nothing is ever sampled):
a bare SERVER span pair, a SERVER span with 5 database child spans, and a
whole Flask request through the real Flask/WSGI instrumentation, in process.
"""

from __future__ import annotations

import io
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, set_span_in_context

from common import emit, paired
from otel_slowstack import SlowStackProcessor

SERVER_ATTRS = {"http.method": "GET", "http.target": "/orders/7", "http.scheme": "http", "net.host.port": 8000}
DB_ATTRS = {"db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = %s", "db.name": "shop"}


class NoopExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def provider(with_slowstack: bool) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=1 << 16, max_export_batch_size=4096))
    if with_slowstack:
        tp.add_span_processor(SlowStackProcessor(threshold="60s"))
    return tp


def span_pair(tp: TracerProvider):
    tracer = tp.get_tracer("bench")

    def run():
        span = tracer.start_span("GET /orders/<id>", kind=SpanKind.SERVER, attributes=SERVER_ATTRS)
        span.end()

    return run


def span_with_db_children(tp: TracerProvider):
    tracer = tp.get_tracer("bench")

    def run():
        root = tracer.start_span("GET /orders/<id>", kind=SpanKind.SERVER, attributes=SERVER_ATTRS)
        ctx = set_span_in_context(root)
        for _ in range(5):
            tracer.start_span("SELECT shop", context=ctx, kind=SpanKind.CLIENT, attributes=DB_ATTRS).end()
        root.end()

    return run


def flask_request(tp: TracerProvider):
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from werkzeug.test import EnvironBuilder

    app = Flask(f"bench{id(tp)}")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return f"order {order_id}"

    FlaskInstrumentor.instrument_app(app, tracer_provider=tp)
    environ = EnvironBuilder(path="/orders/7", method="GET").get_environ()

    def start_response(status, headers, exc_info=None):
        return None

    def run():
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO()
        for _ in app(env, start_response):
            pass

    return run


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, scale = (6, 0.2) if quick else (30, 1.0)
    results = {}
    for name, make, number in (
        ("span_pair", span_pair, 5000),
        ("span_with_5_db_children", span_with_db_children, 1500),
        ("flask_request", flask_request, 1000),
    ):
        base_tp, cand_tp = provider(False), provider(True)
        base, cand = make(base_tp), make(cand_tp)
        for fn in (base, cand):  # warm up caches, lanes, the watchdog thread
            for _ in range(500):
                fn()
        results[name] = paired(base, cand, max(100, int(number * scale)), rounds)
        base_tp.shutdown()
        cand_tp.shutdown()
    emit({"hot_path": results})


if __name__ == "__main__":
    main()
