"""Thread pools: the sample shows the pool thread doing the request's work.

Real uvicorn serves ``examples/async_shop.py`` under ``opentelemetry-instrument``:
a sync FastAPI endpoint (Starlette's thread pool, through anyio), an async
one handing work to ``asyncio.to_thread`` (``run_in_executor`` and
``concurrent.futures``, context propagated), and one using asgiref's
``sync_to_async`` (Django's way). And, in one process, a request thread that
waits on a ``concurrent.futures`` pool.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import time

import pytest
from opentelemetry.trace import SpanKind
from support.spans import innermost, request_to, samples
from support.servers import FAST, uvicorn


@pytest.fixture(scope="module")
def shop(receiver_for_module):
    with uvicorn(receiver_for_module.endpoint, OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="3000", **FAST) as server:
        yield server


@pytest.mark.e2e
def test_each_request_shows_the_pool_thread_doing_its_work(shop, receiver_for_module):
    work = {
        "/export?seconds=1.4": ["export", "render_export"],  # Starlette's pool (anyio)
        "/convert?seconds=1.4": ["convert_currencies"],  # asyncio.to_thread
        "/legacy?seconds=1.4": ["load_legacy_report"],  # asgiref's sync_to_async
    }
    calls = [shop.get_in_background(target) for target in work]
    for call in calls:
        call.join(60)
        assert call.result.get("answer", (None,))[0] == 200, call.result

    threads = {}
    for target, own in work.items():
        span = receiver_for_module.wait_for(request_to(target))[0]
        in_pool = [s for s in samples(span) if s["thread.name"] != "MainThread"]
        assert len(in_pool) >= 2, (samples(span), shop.log())
        # The pool thread's CPU ratio on every one, the first included (read
        # from that thread's clock by the watchdog shortly before the threshold).
        assert all("slowstack.cpu_ratio" in s for s in in_pool), in_pool
        for sample in in_pool:
            stack = sample["code.stacktrace"]
            assert innermost(stack, len(own)) == own, stack  # the pool thread's frames, innermost last
            others = {name for names in work.values() for name in names} - set(own)
            assert not any(f" in {name}\n" in stack + "\n" for name in others), stack
        threads[target] = {s["thread.id"] for s in in_pool}
    # three requests, three different pool threads
    assert all(len(ids) == 1 for ids in threads.values()), threads
    assert len(set.union(*threads.values())) == 3, threads


@pytest.mark.e2e
def test_interrupt_reaches_a_request_whose_work_is_in_the_pool(shop, receiver_for_module):
    target = "/stuck?seconds=60"
    status, _ = shop.get(target, timeout=40)
    assert status == 500, shop.log()
    assert shop.get("/export?seconds=0")[0] == 200  # the pool serves on

    span = receiver_for_module.wait_for(request_to(target))[0]
    assert span["status"] == "error"
    last = samples(span)[-1]
    assert last["slowstack.trigger"] == "interrupt"
    assert last["thread.name"] != "MainThread"
    assert innermost(last["code.stacktrace"], 2) == ["stuck", "wait_for_lock"]
    raised = [e["attributes"] for e in span["events"] if e["name"] == "exception"]
    assert raised and raised[0]["exception.type"].endswith("SlowRequestInterrupted"), span["events"]


def test_a_request_thread_waiting_on_a_pool_future_shows_the_pool_thread(make_sdk):
    """WSGI-style: the request's own thread submits work (context propagated) and waits."""
    sdk = make_sdk(threshold=200, interval=200, max_samples=2)
    pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="renderer")

    def render_invoice() -> None:
        deadline = time.monotonic() + 0.7
        while time.monotonic() < deadline:
            pass

    try:
        with sdk.tracer.start_as_current_span("GET /invoice", kind=SpanKind.SERVER):
            pool.submit(contextvars.copy_context().run, render_invoice).result()
    finally:
        pool.shutdown()
    taken = samples(sdk.finished("GET /invoice"))
    assert len(taken) == 2
    for sample in taken:
        frames = innermost(sample["code.stacktrace"], 8)
        assert frames[-1] == "render_invoice" and "result" in frames, sample["code.stacktrace"]
        assert sample["thread.name"].startswith("renderer")
