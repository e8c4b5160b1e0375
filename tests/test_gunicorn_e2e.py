"""End to end: ``opentelemetry-instrument gunicorn`` → real OTLP/HTTP export → what a backend decodes."""

from __future__ import annotations

import re

import pytest

from support.spans import samples, server_span
from support.servers import BIN, Server, gunicorn, otel_env

pytestmark = pytest.mark.e2e

SLOW = {
    "OTEL_PYTHON_SLOWSTACK_THRESHOLD": "300",
    "OTEL_PYTHON_SLOWSTACK_INTERVAL": "250ms",
    "OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES": "3",
}
SAMPLE_KEYS = {
    "code.stacktrace", "thread.id", "thread.name", "slowstack.sample.index", "slowstack.elapsed_ms",
    "slowstack.trigger", "slowstack.cpu_ratio", "slowstack.db.count", "slowstack.db.duration_ms",
    "slowstack.http.count", "slowstack.http.duration_ms",
}
FRAME = re.compile(r'^  File "([^"]+)", line \d+, in (\S+)$')


def check_samples(span: dict, innermost: str, count: int = 3) -> list:
    found = samples(span)
    assert [s["slowstack.sample.index"] for s in found] == list(range(1, count + 1))
    assert found[0]["slowstack.trigger"] == "threshold"
    assert span["attributes"]["slowstack.samples"] == count
    for sample in found:
        assert SAMPLE_KEYS <= set(sample), SAMPLE_KEYS - set(sample)
        stack = sample["code.stacktrace"]
        assert len(stack.encode()) <= 2048
        frames = [FRAME.match(line) for line in stack.split("\n") if line.startswith("  File")]
        assert all(frames), stack
        assert frames[-1].group(2) == innermost, stack
        assert not any("gunicorn" in f.group(1) for f in frames), "server plumbing must be dropped:\n" + stack
    return found


@pytest.mark.parametrize(
    "worker_class, threads, preload",
    [("sync", 1, False), ("gthread", 4, True)],
    ids=["sync", "gthread-preload"],
)
def test_flask_slow_request_has_samples_at_the_backend(receiver, worker_class, threads, preload):
    with gunicorn(receiver.endpoint, worker_class=worker_class, threads=threads, preload=preload, **SLOW) as server:
        assert server.get("/") == (200, "ok\n")
        assert server.get("/report?seconds=1.3")[0] == 200
        span = receiver.wait_for(server_span("/report"))[0]
        fast = receiver.wait_for(server_span("/"))[0]
    found = check_samples(span, "fetch_exchange_rates")
    stack = found[0]["code.stacktrace"]
    assert "shop.py" in stack and "in report" in stack
    assert 0 <= found[0]["slowstack.cpu_ratio"] < 0.5
    assert samples(fast) == []
    assert not any(k.startswith("slowstack.") for k in fast["attributes"])
    if worker_class == "gthread":
        assert found[0]["thread.name"].startswith("ThreadPoolExecutor")


def test_settings_as_opentelemetry_instrument_flags(receiver):
    argv = [
        str(BIN / "opentelemetry-instrument"),
        "--slowstack_threshold", "300",
        "--slowstack_interval", "250",
        "--slowstack_max_samples", "2",
        "--slowstack_max_stack_bytes", "600",
        str(BIN / "gunicorn"), "--bind", "127.0.0.1:0", "shop:app",
    ]
    with Server(argv, otel_env(receiver.endpoint)) as server:
        assert server.get("/report?seconds=1")[0] == 200
        span = receiver.wait_for(server_span("/report"))[0]
    found = check_samples(span, "fetch_exchange_rates", count=2)
    assert all(len(s["code.stacktrace"].encode()) <= 600 for s in found)


def test_disabled_with_otel_python_disabled_instrumentations(receiver):
    env = dict(SLOW, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="slowstack")
    with gunicorn(receiver.endpoint, **env) as server:
        assert server.get("/report?seconds=0.8")[0] == 200
        span = receiver.wait_for(server_span("/report"))[0]
    assert samples(span) == []


def test_django_and_bare_wsgi(receiver):
    with gunicorn(receiver.endpoint, app="django_wsgi:application", DJANGO_SETTINGS_MODULE="djangoshop", **SLOW) as server:
        assert server.get("/report?seconds=1")[0] == 200
        django_span = receiver.wait_for(lambda s: s["kind"] == "server" and "report" in s["name"])[0]
    check_samples(django_span, "build_report")
    assert "djangoshop.py" in samples(django_span)[0]["code.stacktrace"]

    receiver.spans.clear()
    with gunicorn(receiver.endpoint, app="wsgi_shop:app", **SLOW) as server:
        assert server.get("/report?seconds=1")[0] == 200
        wsgi_span = receiver.wait_for(server_span("/report"))[0]
    found = check_samples(wsgi_span, "slow_upstream")
    first = FRAME.match(found[0]["code.stacktrace"].split("\n")[0])
    assert "opentelemetry/instrumentation/wsgi" in first.group(1)  # the entry point is the middleware
