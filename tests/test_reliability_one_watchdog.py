"""One watchdog thread per process, however many processors; a processor nobody
references is freed with its spans.

Seen: 20 tracer providers that each got a processor left 20 watchdog threads
and 20 processors alive until ``shutdown()``.
"""

from __future__ import annotations

import gc
import threading
import weakref

from opentelemetry.trace import SpanKind
from support.sdk import Sdk
from support.spans import samples

from otel_slowstack import SlowStackProcessor


def watchdog_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "otel-slowstack-watchdog"]


def test_twenty_providers_share_one_watchdog_and_are_freed_when_dropped():
    sdks = [Sdk(threshold=50, interval=50, max_samples=2, snapshot_after="off") for _ in range(20)]
    barrier = threading.Barrier(len(sdks))

    def serve(sdk: Sdk, index: int) -> None:
        barrier.wait()
        with sdk.tracer.start_as_current_span(f"GET /p{index}", kind=SpanKind.SERVER):
            threading.Event().wait(0.3)

    threads = [threading.Thread(target=serve, args=(s, i)) for i, s in enumerate(sdks)]
    for t in threads:
        t.start()
    threading.Event().wait(0.15)
    assert len(watchdog_threads()) == 1  # while all twenty have slow spans in flight
    for t in threads:
        t.join()
    for i, sdk in enumerate(sdks):  # and each processor was served
        assert samples(sdk.finished(f"GET /p{i}"))

    refs = [weakref.ref(s.processor) for s in sdks]
    del sdks, threads, sdk
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert len(watchdog_threads()) <= 1


def test_a_dropped_processor_forgets_its_spans_in_flight():
    sdk = Sdk(threshold=60_000)
    span = sdk.tracer.start_span("GET /never-ends", kind=SpanKind.SERVER)
    ref = weakref.ref(sdk.processor)
    assert sdk.processor.watched_count() == 1
    del sdk
    gc.collect()
    # The open span still points at the provider; the application dropped both.
    del span
    gc.collect()
    assert ref() is None


def test_shutdown_leaves_other_processors_watched():
    first, second = Sdk(threshold=50, max_samples=1), Sdk(threshold=50, max_samples=1)
    first.processor.shutdown()
    with second.tracer.start_as_current_span("GET /still", kind=SpanKind.SERVER):
        threading.Event().wait(0.2)
    assert len(samples(second.finished("GET /still"))) == 1
    assert isinstance(second.processor, SlowStackProcessor)
    second.shutdown()
