"""Side-by-side measurement helpers: every figure is a ratio or a distribution
measured in the same run as its baseline, on a machine that may be noisy."""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from typing import Callable, Sequence


def per_call_ns(fn: Callable[[], object], number: int) -> float:
    """Mean nanoseconds per call over ``number`` calls, GC paused."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        return (time.perf_counter_ns() - start) / number
    finally:
        if enabled:
            gc.enable()


def paired(baseline: Callable[[], object], candidate: Callable[[], object], number: int, rounds: int) -> dict:
    """Alternate baseline and candidate rounds; the ratio of each pair, summarised.

    Alternating (ABAB...) and taking per-pair ratios cancels the slow drifts of
    a shared machine; the median resists the bursts.
    """
    base, cand, ratios = [], [], []
    for i in range(rounds):
        order = (baseline, candidate) if i % 2 == 0 else (candidate, baseline)
        results = {}
        for fn in order:
            results[fn] = per_call_ns(fn, number)
        base.append(results[baseline])
        cand.append(results[candidate])
        ratios.append(results[candidate] / results[baseline])
    return summary(base, cand, ratios)


def summary(base: Sequence[float], cand: Sequence[float], ratios: Sequence[float]) -> dict:
    ratios = sorted(ratios)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 4 else [ratios[0], statistics.median(ratios), ratios[-1]]
    return {
        "baseline_ns": statistics.median(base),
        "candidate_ns": statistics.median(cand),
        "ratio": statistics.median(ratios),
        "ratio_q1": q[0],
        "ratio_q3": q[2],
        "overhead_pct": (statistics.median(ratios) - 1) * 100,
    }


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def emit(result: dict) -> None:
    """Benchmarks print one JSON object on their last line for run.py."""
    sys.stdout.write(json.dumps(result) + "\n")
