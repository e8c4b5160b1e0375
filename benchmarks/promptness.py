"""4. Promptness: how late samples land after their deadlines, with 0, 2 and
8 threads burning CPU in pure Python (they compete for the GIL, which the
watchdog needs to read a stack).

Side by side, under the same load: how late a bare Python thread wakes from
a timed wait and runs its next line. No Python-level watchdog can beat
that; it is the floor the GIL's switch interval sets.
"""

from __future__ import annotations

import _thread
import random
import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from common import emit, percentile, quick_run
from otel_slowstack import SlowStackProcessor

THRESHOLD_MS = 50


def busy(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1


def bare_thread_lateness(wakeups: int, period_s: float) -> list:
    """Lateness (ms) of a plain thread waking from ``lock.acquire(timeout)``."""
    lock = _thread.allocate_lock()
    lock.acquire()
    late: list = []

    def waiter() -> None:
        for _ in range(wakeups):
            target = time.monotonic() + period_s
            lock.acquire(timeout=period_s)
            late.append((time.monotonic() - target) * 1000)

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join()
    return late


def lateness(busy_threads: int, requests: int) -> dict:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SlowStackProcessor(threshold=THRESHOLD_MS, interval=THRESHOLD_MS, max_samples=3))
    tracer = provider.get_tracer("bench")
    stop = threading.Event()
    burners = [threading.Thread(target=busy, args=(stop,), daemon=True) for _ in range(busy_threads)]
    for t in burners:
        t.start()

    def serve(count: int) -> None:
        rng = random.Random(threading.get_ident())
        for _ in range(count):
            time.sleep(rng.uniform(0, 0.02))
            with tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER):
                time.sleep(THRESHOLD_MS * 3.5 / 1000)

    workers = [threading.Thread(target=serve, args=(requests // 8,)) for _ in range(8)]
    for t in workers:
        t.start()
    floor = bare_thread_lateness(requests, THRESHOLD_MS * 3.5 / 1000 / 8)
    for t in workers:
        t.join()
    stop.set()
    late = []
    for span in exporter.get_finished_spans():
        for event in span.events:
            if event.name == "slowstack.sample":
                index = event.attributes["slowstack.sample.index"]
                late.append(event.attributes["slowstack.elapsed_ms"] - THRESHOLD_MS * index)
    provider.shutdown()
    return {
        "busy_threads": busy_threads,
        "samples": len(late),
        "p50_ms": percentile(late, 50),
        "p99_ms": percentile(late, 99),
        "max_ms": max(late) if late else None,
        "bare_p50_ms": percentile(floor, 50),
        "bare_p99_ms": percentile(floor, 99),
    }


def main() -> None:
    quick = quick_run(__doc__)
    requests = 48 if quick else 240
    emit({"promptness": [lateness(n, requests) for n in (0, 2, 8)]})


if __name__ == "__main__":
    main()
