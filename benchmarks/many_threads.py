"""6. Many slow requests at once: the application's progress kept.

3,000 threads each hold one SERVER span open (threshold and interval 100 ms:
far more samples due than the watchdog's CPU budget allows), while one
application thread counts the work it gets done. Rounds alternate between
the same threads holding spans of a provider without otel-slowstack and of
one with it; the figure is the application's progress with it as a share
of its progress without, pair of rounds by pair of rounds.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from common import emit, quartiles, quick_run
from otel_slowstack import SlowStackProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.crowd import THREADS, Crowd  # noqa: E402  (the test suite's helper)


def main() -> None:
    quick = quick_run(__doc__)
    pairs, seconds = (3, 1.0) if quick else (6, 2.0)
    bare = TracerProvider(shutdown_on_exit=False)
    watched = TracerProvider(shutdown_on_exit=False)
    processor = SlowStackProcessor(threshold=100, interval=100, max_samples=1000, snapshot_after="off")
    watched.add_span_processor(processor)
    crowd = Crowd()
    kept = []
    wakeups = getattr(processor._watchdog, 'wakeups', 0)
    try:
        for i in range(pairs):
            order = (bare, watched) if i % 2 == 0 else (watched, bare)
            rates = {id(tp): crowd.round(tp.get_tracer("bench"), seconds) for tp in order}
            kept.append(100 * rates[id(watched)] / rates[id(bare)])
    finally:
        crowd.close()
    fired = getattr(processor._watchdog, 'wakeups', 0) - wakeups
    processor.shutdown()
    q1, med, q3 = quartiles(kept)
    emit({"many_threads": {
        "threads": THREADS, "pairs": pairs, "round_s": seconds, "watchdog_wakeups": fired,
        "kept_pct": med, "kept_q1_pct": q1, "kept_q3_pct": q3, "kept_min_pct": min(kept),
        "kept_mean_pct": statistics.mean(kept),
    }})


if __name__ == "__main__":
    main()
