"""asyncio: each request's own await chain, who holds the loop, interrupts.

Real uvicorn, and gunicorn with the uvicorn worker (``uvicorn-worker``),
serve ``examples/async_shop.py`` (FastAPI) under ``opentelemetry-instrument``
and export OTLP to the receiver: the assertions are on what a backend gets.
"""

from __future__ import annotations

import time

import pytest
from support.spans import assert_interrupted, innermost, request_to, samples, stacks
from support.servers import FAST, gunicorn, uvicorn

pytestmark = pytest.mark.e2e

#: Plumbing outside any request: seeing it in a sample means the wrong stack.
LOOP_FRAMES = ("base_events.py", "runners.py", "/asyncio/events.py", " in run_asgi")


@pytest.fixture(scope="module")
def uvicorn_shop(receiver_for_module):
    with uvicorn(receiver_for_module.endpoint, **FAST) as server:
        yield server


@pytest.fixture(scope="module")
def gunicorn_shop(receiver_for_module):
    """gunicorn's uvicorn worker, interrupting requests after 3 s."""
    with gunicorn(
        receiver_for_module.endpoint,
        app="async_shop:app",
        worker_class="uvicorn_worker.UvicornWorker",
        OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="3000",
        **FAST,
    ) as server:
        yield server


@pytest.mark.parametrize("shop", ["uvicorn_shop", "gunicorn_shop"])
def test_concurrent_requests_get_their_own_await_chain(shop, receiver_for_module, request):
    server = request.getfixturevalue(shop)
    tag = shop.split("_")[0]
    report, inventory = f"/report?seconds=1.4&by={tag}", f"/inventory?seconds=1.4&by={tag}"
    calls = [server.get_in_background(report), server.get_in_background(inventory)]
    for call in calls:
        call.join(60)
        assert call.result.get("answer", (None,))[0] == 200, call.result

    report_span = receiver_for_module.wait_for(request_to(report))[0]
    inventory_span = receiver_for_module.wait_for(request_to(inventory))[0]
    for span, own, other in (
        (report_span, ["report", "fetch_exchange_rates", "sleep"], "count_stock"),
        (inventory_span, ["inventory", "count_stock", "sleep"], "fetch_exchange_rates"),
    ):
        for stack in stacks(span):
            assert other not in stack, stack  # never another request's frames
            assert not any(plumbing in stack for plumbing in LOOP_FRAMES), stack  # nor the loop's
        # While it waits (a sample may also catch it writing its response):
        # its own coroutines, the handler outermost and asyncio.sleep innermost.
        waiting = [stack for stack in stacks(span) if innermost(stack) == ["sleep"]]
        assert len(waiting) >= 2, (stacks(span), server.log())
        for stack in waiting:
            assert [name for name in innermost(stack, 6) if name in own] == own, stack
    assert all(sample["thread.name"] == "MainThread" for sample in samples(report_span))


def test_the_span_blocking_the_loop_is_named_in_the_others_samples(uvicorn_shop, receiver_for_module):
    waiting, blocking = "/report?seconds=3&by=blocked", "/prices?seconds=2&by=blocker"
    waiting_call = uvicorn_shop.get_in_background(waiting)
    time.sleep(0.6)  # the waiting request is in flight before the loop is taken
    blocking_call = uvicorn_shop.get_in_background(blocking)
    for call in (waiting_call, blocking_call):
        call.join(60)
        assert call.result.get("answer", (None,))[0] == 200, call.result

    waiting_span = receiver_for_module.wait_for(request_to(waiting))[0]
    blocking_span = receiver_for_module.wait_for(request_to(blocking))[0]
    # The blocker's samples: its own sync code, from the loop thread's frames.
    assert stacks(blocking_span), uvicorn_shop.log()
    for sample in samples(blocking_span):
        assert innermost(sample["code.stacktrace"], 2) == ["prices", "count_price_collisions"], sample
        assert "slowstack.loop_blocked_by" not in sample
    # The delayed request's samples say who held the loop, and still show its own chain.
    blamed = [s for s in samples(waiting_span) if "slowstack.loop_blocked_by" in s]
    assert blamed, samples(waiting_span)
    assert {s["slowstack.loop_blocked_by"] for s in blamed} == {blocking_span["name"]}
    for sample in blamed:
        assert innermost(sample["code.stacktrace"], 2) == ["fetch_exchange_rates", "sleep"], sample


@pytest.mark.parametrize(
    "target, where",
    [
        ("/report?seconds=60&by=interrupt", ["fetch_exchange_rates", "sleep"]),  # suspended in an await
        ("/prices?seconds=60&by=interrupt", ["prices", "count_price_collisions"]),  # holding the loop
    ],
)
def test_interrupt_raises_in_the_task_and_the_server_answers_500(gunicorn_shop, receiver_for_module, target, where):
    status, _ = gunicorn_shop.get(target, timeout=40)
    assert status == 500, gunicorn_shop.log()
    assert gunicorn_shop.get("/")[0] == 200  # the worker serves on

    assert_interrupted(receiver_for_module.wait_for(request_to(target))[0], where)
    assert "SlowRequestInterrupted" in "".join(gunicorn_shop.output)
