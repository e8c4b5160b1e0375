"""OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER: the request is interrupted, the worker lives on."""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.trace import SpanKind

from otel_slowstack import SlowRequestInterrupted
from otel_slowstack.lifecycle import interrupt
from support.spans import samples
from support.servers import gunicorn, wait_until


def _post(server, path: str) -> int:
    request = urllib.request.Request(server.url + path, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _orders(db_path, customer_id: int) -> int:
    with sqlite3.connect(db_path) as connection:
        return connection.execute("SELECT COUNT(*) FROM orders WHERE customer_id = ?", (customer_id,)).fetchone()[0]


def _interrupted(span: dict) -> dict:
    """The exception event the instrumentation recorded on the span."""
    (event,) = [e["attributes"] for e in span["events"] if e["name"] == "exception"]
    assert event["exception.type"].endswith("SlowRequestInterrupted")
    return event


@pytest.mark.e2e
def test_stuck_view_gets_500_transaction_rolls_back_worker_lives_on(receiver, tmp_path):
    db = tmp_path / "shop.db"
    settings = dict(
        SHOP_DB=str(db),
        OTEL_PYTHON_SLOWSTACK_THRESHOLD="300",
        OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="off",
        OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="1000",
    )
    with gunicorn(receiver.endpoint, extra_args=["--timeout", "60"], **settings) as server:
        assert wait_until(lambda: len(server.worker_pids()) == 1)
        workers = server.worker_pids()
        assert _post(server, "/checkout?customer=9001") == 200  # paid at once: committed
        assert _post(server, "/checkout?customer=9002&seconds=120") == 500
        assert server.get("/") == (200, "ok\n")
        assert server.worker_pids() == workers  # the same worker served the next request
        assert "WORKER TIMEOUT" not in server.log()
    assert _orders(db, 9001) == 1
    assert _orders(db, 9002) == 0  # rolled back by the view's own `with connection:`

    def stuck_checkout(span: dict) -> bool:
        return span["kind"] == "server" and span["name"] == "POST /checkout" and span["status"] == "error"

    span = receiver.wait_for(stuck_checkout)[0]
    assert span["attributes"].get("http.status_code", span["attributes"].get("http.response.status_code")) == 500
    final = samples(span)[-1]
    assert final["slowstack.trigger"] == "interrupt"
    assert final["code.stacktrace"].rstrip().endswith("in wait_for_payment")
    assert "in wait_for_payment" in _interrupted(span)["exception.stacktrace"]


@pytest.mark.e2e
def test_cpu_loop_in_a_gthread_pool_thread_is_interrupted(receiver):
    settings = dict(
        OTEL_PYTHON_SLOWSTACK_THRESHOLD="300",
        OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="off",
        OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="800",
    )
    with gunicorn(receiver.endpoint, worker_class="gthread", threads=2, **settings) as server:
        assert wait_until(lambda: len(server.worker_pids()) == 1)
        workers = server.worker_pids()
        assert server.get("/prices?n=1000000")[0] == 500  # hours of work, stopped at 800 ms
        assert server.get("/prices?n=50")[0] == 200
        assert server.worker_pids() == workers
    span = receiver.wait_for(lambda s: s["name"] == "GET /prices" and s["status"] == "error")[0]
    assert samples(span)[-1]["slowstack.trigger"] == "interrupt"
    assert "in count_price_collisions" in _interrupted(span)["exception.stacktrace"]


# -- in process: the exception must never reach a thread that moved on ----------


def _spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_a_thread_that_left_the_span_is_not_interrupted(make_sdk):
    tracer = make_sdk(threshold=50, interrupt_after=150, snapshot_after="off").tracer
    escaped: list = []

    def begin():
        return tracer.start_span("consume order", kind=SpanKind.CONSUMER)  # left open

    def run():
        span = begin()
        try:
            _spin(0.8)  # other work: the span's code has returned
        except SlowRequestInterrupted as exc:
            escaped.append(exc)
        span.end()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert escaped == []


def test_an_interrupt_decided_as_the_span_ends_is_taken_back(make_sdk):
    """The watchdog decided to interrupt just as the thread ended the span: the
    exception must not follow the thread into whatever it does next."""
    sdk = make_sdk(threshold=60_000, snapshot_after="off")
    ready, go = threading.Event(), threading.Event()
    found: dict = {}
    outside: list = []

    def serve() -> None:
        with sdk.tracer.start_as_current_span("GET /race", kind=SpanKind.SERVER) as span:
            found["watched"] = sdk.processor._spans[span.get_span_context().span_id]
            ready.set()
            go.wait(10)
        try:
            _spin(0.5)  # the server loop, between requests
        except SlowRequestInterrupted as exc:
            outside.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    assert ready.wait(10)
    watched = found["watched"]
    owner = watched.owner
    # The watchdog's side, step by step: it has marked its decision and seen
    # the span open; the thread now ends the span; the exception goes out.
    watched.fired = True  # as ``Schedule._fire`` marks a span before any of its deadlines' work
    watched.interrupt_state = interrupt.DECIDING
    go.set()
    assert wait_until(lambda: watched.ended, timeout=10, interval=0.0005)
    assert owner.interrupt(SlowRequestInterrupted)
    watched.interrupt_state = interrupt.SENT
    thread.join()
    assert outside == []
