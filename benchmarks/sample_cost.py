"""3. What one sample costs: capturing and formatting a 20-, 50- and 100-frame
stack of another thread, and the delay that sampling inflicts on it.

The sampled thread parks at a known depth; the measuring thread runs the
same capture-and-format path the watchdog runs. The delay on the sampled
thread is read from a spinning thread's throughput, sampled hard versus not
sampled, side by side.
"""

from __future__ import annotations

import sys
import threading
import time

from common import emit, percentile
from otel_slowstack.frames import current_frames
from otel_slowstack.owners import ThreadOwner
from otel_slowstack.settings import Settings
from otel_slowstack.stacktrace import format_stack


def park(depth: int, ready: threading.Event, release: threading.Event, box: dict) -> None:
    if depth > 1:
        park(depth - 1, ready, release, box)
        return
    box["starter"] = sys._getframe(0)
    ready.set()
    release.wait()


def starter_at_depth(depth: int):
    """A thread parked ``depth`` frames deep, with the outermost of those as the span's entry."""
    ready, release, box = threading.Event(), threading.Event(), {}

    def outer():
        box["entry"] = sys._getframe(0)
        park(depth - 1, ready, release, box)

    thread = threading.Thread(target=outer)
    thread.start()
    ready.wait()
    return thread, release, box["entry"]


def capture_cost(depth: int, settings: Settings, repeats: int) -> dict:
    thread, release, entry = starter_at_depth(depth)
    owner = ThreadOwner(thread.ident, entry)
    times = []
    frames_seen = 0
    for _ in range(repeats):
        start = time.perf_counter_ns()
        lines = owner.capture(current_frames(), None)
        text = format_stack(lines, settings.max_frames, settings.max_stack_bytes)
        times.append(time.perf_counter_ns() - start)
        frames_seen = len(lines)
    release.set()
    thread.join()
    assert text
    return {"frames": frames_seen, "p50_us": percentile(times, 50) / 1000, "p99_us": percentile(times, 99) / 1000}


def inflicted_delay(samples_per_second: int, seconds: float) -> dict:
    """Throughput of a spinning thread while sampled at a high rate, and while not."""
    settings = Settings.from_env({})

    def spin(result: dict, stop: threading.Event, depth: int = 50) -> None:
        if depth:
            return spin(result, stop, depth - 1)
        result["entry"] = sys._getframe(0)
        n = 0
        while not stop.is_set():
            n += 1
        result["n"] = n

    rates = {}
    for sampled in (False, True, False, True):
        stop, result = threading.Event(), {}
        thread = threading.Thread(target=spin, args=(result, stop))
        thread.start()
        while "entry" not in result:
            time.sleep(0.001)
        owner = ThreadOwner(thread.ident, thread_entry(thread.ident))
        taken = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if sampled:
                format_stack(owner.capture(current_frames(), None), settings.max_frames, settings.max_stack_bytes)
                taken += 1
            time.sleep(1 / samples_per_second)
        stop.set()
        thread.join()
        rates.setdefault(sampled, []).append((result["n"] / seconds, taken))
    base = sum(r for r, _ in rates[False]) / len(rates[False])
    loaded = sum(r for r, _ in rates[True]) / len(rates[True])
    taken = sum(t for _, t in rates[True]) / len(rates[True])
    lost_s = (1 - loaded / base) * seconds
    return {
        "samples_per_second": samples_per_second,
        "throughput_ratio": loaded / base,
        "delay_per_sample_us": max(0.0, lost_s / taken * 1e6) if taken else None,
    }


def thread_entry(ident: int):
    frame = current_frames()[ident]
    while frame.f_back is not None and frame.f_back.f_code.co_name != "run":
        frame = frame.f_back
    return frame


def main() -> None:
    quick = "--quick" in sys.argv
    settings = Settings.from_env({})
    result = {f"frames_{d}": capture_cost(d, settings, 300 if quick else 2000) for d in (20, 50, 100)}
    result["inflicted"] = inflicted_delay(200, 0.5 if quick else 2.0)
    emit({"sample_cost": result})


if __name__ == "__main__":
    main()
