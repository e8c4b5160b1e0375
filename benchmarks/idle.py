"""5. Idle cost: watchdog wake-ups per second with nothing in flight, and
with 1,000 watched spans in flight of which none is due."""

from __future__ import annotations

import sys
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from common import emit
from otel_slowstack import SlowStackProcessor


def wakeups_per_second(processor: SlowStackProcessor, seconds: float) -> float:
    before = processor._watchdog.wakeups
    time.sleep(seconds)
    return (processor._watchdog.wakeups - before) / seconds


def main() -> None:
    seconds = 1.0 if "--quick" in sys.argv else 5.0
    provider = TracerProvider()
    processor = SlowStackProcessor(threshold="100ms", interval="100ms", max_samples=2)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    # Some activity first, slow spans included, then quiet.
    for _ in range(3):
        with tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER):
            time.sleep(0.25)
    for _ in range(1000):
        with tracer.start_as_current_span("GET /fast", kind=SpanKind.SERVER):
            pass
    time.sleep(0.3)  # the last deadlines pass
    idle = wakeups_per_second(processor, seconds)

    quiet = SlowStackProcessor(threshold="600s")
    provider.add_span_processor(quiet)
    held = [tracer.start_span(f"GET /held/{i}", kind=SpanKind.SERVER) for i in range(1000)]
    time.sleep(0.1)
    in_flight = wakeups_per_second(quiet, seconds)
    for span in held:
        span.end()
    provider.shutdown()
    emit({"idle": {"nothing_in_flight_per_s": idle, "1000_in_flight_none_due_per_s": in_flight, "seconds": seconds}})


if __name__ == "__main__":
    main()
