"""3. What one sample costs the watchdog: a 52-frame stack, captured and formatted.

A request thread starts a SERVER span through ``start_as_current_span`` of a
real provider with ``SlowStackProcessor``, goes 52 frames deep (counted from
the span's entry inwards, the frames a sample shows) and parks. The
measuring thread, standing in for the watchdog, calls the processor's own
sampling path on the span's record, timed with its own thread CPU clock:

- capture to formatted string (``sample.capture_stack``): the read of every
  thread's frames, the walk from the innermost frame to the entry, and the
  formatting;
- the whole event's attributes (``sample.sample_attributes``), which adds the
  thread's name, CPU clock and the span's counters;

each for a new span (a fresh request parked in the same code, as a server's
next slow request would be) and for a stuck thread sampled again with its
stack unchanged. The very first sample in the process (cold caches) is
reported alone.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from common import emit, percentile, quick_run
from otel_slowstack import SlowStackProcessor
from otel_slowstack import sample

DEPTH = 52


class Parked:
    """One request thread; each ``park()`` serves one new span parked DEPTH frames deep."""

    def __init__(self, tracer) -> None:
        self.tracer = tracer
        self.go = threading.Semaphore(0)
        self.ready = threading.Semaphore(0)
        self.release = threading.Event()
        self.span_id = 0
        self.entry = None
        self.quit = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            self.go.acquire()
            if self.quit:
                return
            self._request()

    def _request(self) -> None:
        with self.tracer.start_as_current_span("GET /reports/<id>", kind=SpanKind.SERVER) as span:
            self.span_id = span.get_span_context().span_id
            self.entry = sys._getframe(0)
            self._deeper(DEPTH - 1)

    def _deeper(self, depth: int) -> None:
        # ``Event.wait`` and ``Condition.wait`` are the innermost two frames.
        if depth > 3:
            self._deeper(depth - 1)
            return
        self.ready.release()
        self.release.wait()

    def park(self) -> int:
        self.release.clear()
        self.go.release()
        self.ready.acquire()
        return self.span_id

    def unpark(self) -> None:
        self.release.set()

    def frames_below_entry(self) -> int:
        frame, count = sys._current_frames()[self.thread.ident], 1
        while frame is not None and frame is not self.entry:
            frame, count = frame.f_back, count + 1
        return count

    def close(self) -> None:
        self.quit = True
        self.release.set()
        self.go.release()
        self.thread.join(5)


def timed(fn) -> int:
    start = time.thread_time_ns()
    fn()
    return time.thread_time_ns() - start


def main() -> None:
    quick = quick_run(__doc__)
    repeats = 300 if quick else 3000
    provider = TracerProvider(shutdown_on_exit=False)
    processor = SlowStackProcessor(threshold="600s")
    provider.add_span_processor(processor)
    settings = processor.settings
    parked = Parked(provider.get_tracer("bench"))

    def record(span_id: int):
        """The processor's record of the span (its ``Watched``), as its shutdown path finds it."""
        return next(w for w in processor.open_roots() if w.span_id == span_id)

    # ``advance`` (move the CPU baseline on, as the watchdog does) may come and go.
    takes_advance = "advance" in inspect.signature(sample.sample_attributes).parameters

    def capture(watched):
        return lambda: sample.capture_stack(watched, settings)

    def attributes(watched, advance: bool):
        kwargs = {"advance": advance} if takes_advance else {}
        return lambda: sample.sample_attributes(watched, "threshold", 1, time.monotonic_ns(), settings, **kwargs)

    results: dict = {}
    watched = record(parked.park())
    frames = parked.frames_below_entry()
    box: list = []
    results["cold_first_capture_us"] = timed(lambda: box.append(sample.capture_stack(watched, settings))) / 1000
    stack = box[0]
    parked.unpark()
    assert stack, "no stack captured: the benchmark no longer drives the sampling path"

    new_capture, new_attrs = [], []
    for i in range(repeats):
        watched = record(parked.park())
        new_capture.append(timed(capture(watched)))
        new_attrs.append(timed(attributes(watched, advance=False)))
        parked.unpark()
    watched = record(parked.park())
    again_capture, again_attrs = [], []
    for i in range(repeats):
        again_capture.append(timed(capture(watched)))
        again_attrs.append(timed(attributes(watched, advance=True)))
    lines = stack.count("\n") + 1
    parked.unpark()
    parked.close()
    provider.shutdown()

    def dist(values):
        return {"p50_us": percentile(values, 50) / 1000, "p99_us": percentile(values, 99) / 1000}

    results.update({
        "frames": frames,
        "stack_lines": lines,
        "stack_bytes": len(stack.encode()),
        "repeats": repeats,
        "new_span_capture": dist(new_capture),
        "new_span_attributes": dist(new_attrs),
        "same_stack_capture": dist(again_capture),
        "same_stack_attributes": dist(again_attrs),
    })
    emit({"sample_cost": results})


if __name__ == "__main__":
    main()
