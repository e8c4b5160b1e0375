"""5. The watchdog's own cost: under traffic that never becomes slow, and idle.

Default settings (threshold 1 s). One application thread serves 500 requests
a second, each a SERVER span through ``start_as_current_span`` that ends in
well under the threshold. Counted: the watchdog's wake-ups per threshold
interval, and its thread's CPU time (read from that thread's own CPU clock)
as a share of one core. Then, nothing in flight: wake-ups over the same
time; and 1,000 spans in flight of which none is due.
"""

from __future__ import annotations

import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from common import emit, quick_run
from otel_slowstack import SlowStackProcessor

RATE = 500


def watchdog_cpu_ns(dog, required: bool = True) -> int:
    """CPU time of the watchdog thread so far, read from that thread's own CPU clock."""
    ident = getattr(dog, "thread_ident", None)
    if ident is None:
        ident = next((t.ident for t in threading.enumerate() if t.name == "otel-slowstack-watchdog"), None)
    if ident is None and not required:
        return 0  # no watchdog thread at all: it costs nothing
    if ident is None:
        raise RuntimeError("the watchdog thread was not found: its CPU cannot be read")
    return time.clock_gettime_ns(time.pthread_getcpuclockid(ident))


def traffic(tracer, seconds: float) -> int:
    """RATE requests a second on this thread for ``seconds``; returns how many."""
    period = 1 / RATE
    start = time.monotonic()
    served = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            return served
        with tracer.start_as_current_span("GET /orders/<id>", kind=SpanKind.SERVER):
            sum(range(50))
        served += 1
        pause = start + served * period - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def main() -> None:
    seconds = 3.0 if quick_run(__doc__) else 20.0
    provider = TracerProvider(shutdown_on_exit=False)
    processor = SlowStackProcessor()  # default settings
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    dog = processor._watchdog
    threshold_s = processor.settings.threshold_ns / 1e9

    with tracer.start_as_current_span("GET /warm-up", kind=SpanKind.SERVER):
        pass  # the watchdog thread exists from here on
    time.sleep(threshold_s + 0.2)
    wakeups, cpu, wall = dog.wakeups, watchdog_cpu_ns(dog), time.monotonic_ns()
    served = traffic(tracer, seconds)
    wall = time.monotonic_ns() - wall
    under_traffic = {
        "seconds": wall / 1e9,
        "requests": served,
        "requests_per_s": served / (wall / 1e9),
        "threshold_s": threshold_s,
        "wakeups": dog.wakeups - wakeups,
        "wakeups_per_threshold": (dog.wakeups - wakeups) / (wall / 1e9 / threshold_s),
        "cpu_pct_of_core": 100 * (watchdog_cpu_ns(dog) - cpu) / wall,
    }

    time.sleep(threshold_s + 0.2)  # the last deadlines pass
    wakeups, cpu = dog.wakeups, watchdog_cpu_ns(dog, required=False)
    time.sleep(seconds)
    idle = {"seconds": seconds, "wakeups": dog.wakeups - wakeups,
            "cpu_ms": max(0, watchdog_cpu_ns(dog, required=False) - cpu) / 1e6}

    other = TracerProvider(shutdown_on_exit=False)
    other.add_span_processor(SlowStackProcessor(threshold="600s"))
    held = [other.get_tracer("bench").start_span(f"GET /held/{i}", kind=SpanKind.SERVER) for i in range(1000)]
    time.sleep(0.1)
    wakeups = dog.wakeups
    time.sleep(seconds)
    none_due = {"seconds": seconds, "in_flight": len(held), "wakeups": dog.wakeups - wakeups}
    for span in held:
        span.end()
    other.shutdown()
    provider.shutdown()
    emit({"watchdog_cost": {"traffic": under_traffic, "idle": idle, "none_due": none_due}})


if __name__ == "__main__":
    main()
