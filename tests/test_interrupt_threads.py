"""Interrupts and threads other than the main one.

- A span started on one thread and ended on another (a consumer loop hands
  each message's span to a pool thread): the loop is never interrupted; the
  interrupt is withheld and the sample says so.
- gthread: a blocked call in a pool thread is not broken; the exception
  comes when the call returns (the README's documented limit).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from otel_slowstack import SlowRequestInterrupted
from support.spans import samples
from support.servers import APPS, gunicorn, wait_until



def test_a_consumer_loop_handing_its_spans_to_a_pool_is_never_interrupted(make_sdk):
    sdk = make_sdk(threshold=100, max_samples=1, snapshot_after="off", interrupt_after=150)
    messages: queue.Queue = queue.Queue()
    in_loop: list = []
    in_handler: list = []

    def handle(span, message: int) -> None:
        with trace.use_span(span, end_on_exit=True):
            try:
                time.sleep(0.6)  # long past INTERRUPT_AFTER
            except SlowRequestInterrupted as exc:
                in_handler.append(exc)

    def consume(pool: ThreadPoolExecutor) -> None:
        while True:
            try:
                message = messages.get(timeout=30)
                if message is None:
                    return
                span = sdk.tracer.start_span(f"process {message}", kind=SpanKind.CONSUMER)
                pool.submit(handle, span, message)
            except SlowRequestInterrupted as exc:
                in_loop.append(exc)

    with ThreadPoolExecutor(4) as pool:
        loop = threading.Thread(target=consume, args=(pool,))
        loop.start()
        for message in range(8):  # the loop wakes up while earlier spans are due
            messages.put(message)
            time.sleep(0.1)
        time.sleep(0.8)
        messages.put(None)
        loop.join(30)
    sdk.shutdown()

    assert in_loop == [] and in_handler == []
    spans = sdk.exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == [f"process {n}" for n in range(8)]
    # Each span's interrupt sample (when a loaded machine let the watchdog take
    # it while the loop still stood where the span began) says why it was withheld.
    interrupt_samples = [s for span in spans for s in samples(span) if s["slowstack.trigger"] == "interrupt"]
    assert interrupt_samples, [samples(span) for span in spans]
    assert all(s["slowstack.interrupt.withheld"] == "unscoped" for s in interrupt_samples)


@pytest.mark.e2e
def test_gthread_a_blocked_call_sees_the_interrupt_when_it_returns(receiver):
    """The documented limit: in a pool thread, ``time.sleep(3)`` is not cut
    short at INTERRUPT_AFTER=1s; the request still ends in a 500, raised
    right after the sleep, in the view."""
    with gunicorn(
        receiver.endpoint,
        app="interrupt_app:app",
        worker_class="gthread",
        threads=2,
        extra_args=["--pythonpath", str(APPS)],
        OTEL_PYTHON_SLOWSTACK_THRESHOLD="500",
        OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="off",
        OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="1s",
    ) as server:
        assert wait_until(lambda: len(server.worker_pids()) == 1)
        began = time.monotonic()
        assert server.get("/sleep?seconds=3")[0] == 500
        assert time.monotonic() - began >= 3  # the sleep ran to its end
        assert server.get("/")[0] == 200
    span = receiver.wait_for(lambda s: s["name"] == "GET /sleep" and s["status"] == "error")[0]
    assert samples(span)[-1]["slowstack.trigger"] == "interrupt"
    (raised,) = [e["attributes"] for e in span["events"] if e["name"] == "exception"]
    assert raised["exception.type"].endswith("SlowRequestInterrupted")
    assert raised["exception.stacktrace"].rstrip().splitlines()[-2].strip() == 'time.sleep(float(request.args["seconds"]))'


def test_a_function_decorated_with_start_as_current_span_is_interrupted(make_sdk):
    tracer = make_sdk(threshold=100, max_samples=1, snapshot_after="off", interrupt_after=150).tracer
    outcome: list = []

    @tracer.start_as_current_span("process message", kind=SpanKind.CONSUMER)
    def process() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.01)

    def run() -> None:
        try:
            process()
            outcome.append("finished")
        except SlowRequestInterrupted:
            outcome.append("interrupted")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert outcome == ["interrupted"]
