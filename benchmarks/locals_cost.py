"""7. What CAPTURE_LOCALS costs per frame: the locals of one parked frame
holding big values (a 150 MB ``bytes``, a 50 MB ``str``, a million-item set,
a 100,000-item dict, a 100,000-digit int) and credentials, rendered as the
watchdog renders them: time per frame, peak memory allocated while
rendering, bytes per rendered value.

    python benchmarks/locals_cost.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import tracemalloc

from common import emit, quick_run
from otel_slowstack.capture.local_variables import local_lines
from otel_slowstack.settings import Settings


def park(ready: threading.Event, release: threading.Event, box: dict) -> None:
    blob = bytes(150_000_000)  # noqa: F841
    text = "x" * 50_000_000  # noqa: F841
    members = set(range(1_000_000))  # noqa: F841
    mapping = {i: "v" * 100 for i in range(100_000)}  # noqa: F841
    digits = 7 ** 120_000  # noqa: F841
    dsn = "postgres://shop:S3cr3t@db.internal:5432/shop"  # noqa: F841
    headers = [("Authorization", "Bearer S3cr3t"), ("Accept", "application/json")]  # noqa: F841
    box["frame"] = sys._getframe(0)
    ready.set()
    release.wait()


def main() -> None:
    rounds = 50 if quick_run(__doc__) else 500
    ready, release, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=park, args=(ready, release, box))
    thread.start()
    ready.wait()
    frame, redact = box["frame"], Settings().redact
    try:
        times = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            lines = local_lines(frame, redact)
            times.append(time.perf_counter_ns() - start)
        tracemalloc.start()
        lines = local_lines(frame, redact)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        release.set()
        thread.join()
    assert not any("S3cr3t" in line for line in lines)
    sizes = [len(line.encode()) for line in lines]
    emit({
        "name": "locals_cost",
        "locals": len(lines),
        "frame_us_median": statistics.median(times) / 1000,
        "frame_us_p99": sorted(times)[int(len(times) * 0.99) - 1] / 1000,
        "peak_alloc_bytes": peak,
        "line_bytes_max": max(sizes),
        "line_bytes_mean": statistics.mean(sizes),
    })


if __name__ == "__main__":
    main()
