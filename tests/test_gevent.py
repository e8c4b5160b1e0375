"""gevent: each request's own greenlet stack, a CPU hog caught, interrupts.

Real ``gunicorn -k gevent`` (monkey-patched) serves ``examples/gevent_shop.py``
(Flask) under ``opentelemetry-instrument`` and exports OTLP to the receiver.
"""

from __future__ import annotations

import pytest
from support.spans import assert_interrupted, innermost, request_to, stacks
from support.servers import FAST, gunicorn

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shop(receiver_for_module):
    with gunicorn(
        receiver_for_module.endpoint,
        app="gevent_shop:app",
        worker_class="gevent",
        OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="3000",
        **FAST,
    ) as server:
        yield server


def test_concurrent_requests_get_their_own_greenlet_stack(shop, receiver_for_module):
    report, inventory = "/report?seconds=1.4", "/inventory?seconds=1.4"
    calls = [shop.get_in_background(report), shop.get_in_background(inventory)]
    for call in calls:
        call.join(60)
        assert call.result.get("answer", (None,))[0] == 200, call.result

    for target, own, other in (
        (report, ["report", "fetch_exchange_rates", "sleep"], "count_stock"),
        (inventory, ["inventory", "count_stock", "sleep"], "fetch_exchange_rates"),
    ):
        span = receiver_for_module.wait_for(request_to(target))[0]
        assert len(stacks(span)) >= 2, shop.log()
        for stack in stacks(span):
            assert other not in stack, stack  # never the other greenlet's frames
            assert " in run\n" not in stack and "gevent/hub.py" not in stack.rsplit("\n", 1)[0], stack
        waiting = [stack for stack in stacks(span) if innermost(stack) == ["sleep"]]
        assert len(waiting) >= 2, stacks(span)
        for stack in waiting:  # switched out in gevent's sleep, inside its own handler
            assert innermost(stack, 3) == own, stack


def test_a_greenlet_hogging_the_cpu_is_sampled_while_it_hogs(shop, receiver_for_module):
    target = "/prices?seconds=1.4"
    assert shop.get(target)[0] == 200
    span = receiver_for_module.wait_for(request_to(target))[0]
    # The span ends when the hog does, and nothing else ran on that thread
    # meanwhile: a sample showing the hog was taken while it hogged, which only
    # a real OS thread (not a greenlet waiting for the hub) can do.
    hogging = [s for s in stacks(span) if innermost(s, 2) == ["prices", "count_price_collisions"]]
    assert len(hogging) >= 2, (stacks(span), shop.log())


@pytest.mark.parametrize(
    "target, where",
    [
        ("/stuck?seconds=60", ["stuck", "wait_for_lock", "sleep"]),  # switched out: thrown in by the hub
        ("/prices?seconds=60", ["prices", "count_price_collisions"]),  # running: raised in the thread
    ],
)
def test_interrupt_raises_in_the_greenlet_and_flask_answers_500(shop, receiver_for_module, target, where):
    status, _ = shop.get(target, timeout=40)
    assert status == 500, shop.log()
    assert shop.get("/")[0] == 200  # the worker serves on

    assert_interrupted(receiver_for_module.wait_for(request_to(target))[0], where)
