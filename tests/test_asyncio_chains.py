"""Await chains of every shape asyncio and anyio build, in one process.

The real SDK with ``SlowStackProcessor`` and an in-memory exporter: each
request shape (gather, task groups, ``wait_for``, ``shield``, async
generators, custom awaitables, thread hand-offs, a loop-blocking neighbour)
must come out as that request's own frames, innermost last; and an interrupt
must raise ``SlowRequestInterrupted`` in it. The servers in test_asyncio.py
check the same end to end; these keep each shape cheap to pin down.
"""

from __future__ import annotations

import asyncio
import sys
import time

import anyio
from opentelemetry.trace import SpanKind

from otel_slowstack import SlowRequestInterrupted
from support.sdk import Sdk
from support.spans import samples

WAIT = 0.6  # each request's wait; samples at 0.2 s


async def slow_call() -> None:
    await asyncio.sleep(WAIT)


async def with_gather() -> None:
    await asyncio.gather(slow_call(), asyncio.sleep(WAIT / 2))


async def with_anyio_task_group() -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(slow_call)


async def with_asyncio_task_group() -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(slow_call())


async def with_wait_for() -> None:
    await asyncio.wait_for(slow_call(), 30)


async def with_shield() -> None:
    await asyncio.shield(slow_call())


async def rows():
    await slow_call()
    yield 1


async def with_async_generator() -> None:
    async for _ in rows():
        pass


class Upstream:
    def __await__(self):
        return slow_call().__await__()


async def with_custom_awaitable() -> None:
    await Upstream()


def blocking_call() -> None:
    time.sleep(WAIT)


async def with_to_thread() -> None:
    await asyncio.to_thread(blocking_call)


async def with_anyio_thread() -> None:
    await anyio.to_thread.run_sync(blocking_call)


SHAPES = {
    "gather": (with_gather, ["with_gather", "slow_call", "sleep"]),
    "anyio task group": (with_anyio_task_group, ["with_anyio_task_group", "slow_call", "sleep"]),
    "wait_for": (with_wait_for, ["with_wait_for", "wait_for", "slow_call", "sleep"]),
    "shield": (with_shield, ["with_shield", "slow_call", "sleep"]),
    "async generator": (with_async_generator, ["with_async_generator", "rows", "slow_call", "sleep"]),
    "custom awaitable": (with_custom_awaitable, ["with_custom_awaitable", "slow_call", "sleep"]),
    "to_thread": (with_to_thread, ["with_to_thread", "to_thread", "blocking_call"]),
    "anyio thread": (with_anyio_thread, ["with_anyio_thread", "blocking_call"]),
}
if sys.version_info >= (3, 11):
    SHAPES["asyncio task group"] = (with_asyncio_task_group, ["with_asyncio_task_group", "slow_call", "sleep"])


def run_requests(requests: dict, **settings) -> dict:
    """Run ``{name: coroutine function}`` as concurrent SERVER spans; finished spans by name."""
    sdk = Sdk(threshold=200, interval=200, max_samples=2, **settings)

    async def serve(name, handler):
        try:
            with sdk.tracer.start_as_current_span(name, kind=SpanKind.SERVER):
                await handler()
        except BaseException:  # noqa: B036 - the outcome is read from the span
            pass

    async def main():
        await asyncio.gather(*(serve(name, handler) for name, handler in requests.items()))

    asyncio.run(main())
    sdk.shutdown()
    return {span.name: span for span in sdk.exporter.get_finished_spans()}


def names(stack: str) -> list:
    return [line.rsplit(" in ", 1)[1] for line in stack.splitlines() if line.startswith("  File ")]


def test_every_shape_shows_its_own_await_chain_innermost_last():
    spans = run_requests({name: handler for name, (handler, _) in SHAPES.items()})
    for name, (_, expected) in SHAPES.items():
        stacks = [sample["code.stacktrace"] for sample in samples(spans[name])]
        assert stacks, name
        for stack in stacks:
            frames = names(stack)
            assert [f for f in frames if f in expected] == expected, (name, stack)
            assert frames[-1] == expected[-1], (name, stack)  # the innermost await last
            others = {f for _, (_, e) in SHAPES.items() for f in e[:1]} - {expected[0]}
            assert not others & set(frames), (name, stack)  # no other request's frames
            assert frames[0] == "serve" and not {"run_forever", "_run_once", "main"} & set(frames), (name, stack)


def test_samples_of_requests_waiting_for_the_loop_name_the_span_holding_it():
    async def waiting():
        await asyncio.sleep(0.9)

    async def holding():
        await asyncio.sleep(0.1)
        time.sleep(0.7)  # sync work inside async code: nobody else runs

    spans = run_requests({"GET /waiting": waiting, "GET /holding": holding})
    blamed = {s.get("slowstack.loop_blocked_by") for s in samples(spans["GET /waiting"])}
    assert blamed == {"GET /holding"}
    for sample in samples(spans["GET /holding"]):
        assert names(sample["code.stacktrace"])[-1] == "holding"  # its own frames, from the loop thread
        assert "slowstack.loop_blocked_by" not in sample


def test_interrupt_raises_slow_request_interrupted_in_every_shape():
    def blocked_loop():
        async def run():
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                pass

        return run

    shapes = {name: handler for name, (handler, _) in SHAPES.items()}
    shapes["holding the loop"] = blocked_loop()
    spans = run_requests(shapes, interrupt_after=300)
    for name, span in spans.items():
        raised = [e.attributes["exception.type"] for e in span.events if e.name == "exception"]
        assert raised, name
        group = "task group" in name  # task groups wrap it in an ExceptionGroup
        assert raised[0].endswith("ExceptionGroup" if group else SlowRequestInterrupted.__name__), (name, raised)
        assert samples(span)[-1]["slowstack.trigger"] == "interrupt", name
