"""Side-by-side measurement helpers shared by the benchmarks.

Every comparison runs its variants in one process, alternating over rounds
(A B C, then C B A, ...), and times each round with the process's CPU clock,
so other jobs on a shared machine do not count. A figure is what a variant
adds over a base, in µs per operation, computed round by round: the median
of those per-round differences is reported with its quartiles, so the noise
is visible next to the figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

Rounds = Dict[str, List[float]]


class NoopExporter(SpanExporter):
    """Drops every batch: the SDK's export path runs, nothing leaves the process."""

    def export(self, spans):
        return SpanExportResult.SUCCESS


class NoopProcessor(SpanProcessor):
    """A span processor that does nothing: the floor any processor costs."""

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span) -> None:
        pass


def cpu_ns_per_op(fn: Callable[[], object], number: int) -> float:
    """Process CPU nanoseconds per call over ``number`` calls, GC paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.process_time_ns()
        for _ in range(number):
            fn()
        return (time.process_time_ns() - start) / number
    finally:
        if enabled:
            gc.enable()


def alternate(variants: Dict[str, Callable[[], object]], number: int, rounds: int, warmup: int = 200) -> Rounds:
    """ns per operation of each variant, one value per round, order reversed every other round."""
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    out: Rounds = {name: [] for name in names}
    gc.collect()
    for i in range(rounds):
        gc.collect(1)  # the young garbage of the last round; a full pass each round would dominate
        for name in names if i % 2 == 0 else reversed(names):
            out[name].append(cpu_ns_per_op(variants[name], number))
    return out


def quartiles(values: Sequence[float]) -> tuple:
    values = sorted(values)
    if len(values) >= 4:
        q1, q2, q3 = statistics.quantiles(values, n=4)
        return q1, q2, q3
    m = statistics.median(values)
    return values[0], m, values[-1]


def added(rounds: Rounds, base: str, variant: str, per: float = 1.0) -> dict:
    """What ``variant`` adds over ``base``, in µs per operation (divided by ``per``)."""
    deltas = [(v - b) / per / 1000 for v, b in zip(rounds[variant], rounds[base])]
    return delta_summary(deltas, statistics.median(rounds[base]) / per / 1000)


def delta_summary(deltas_us: Sequence[float], base_us: float) -> dict:
    q1, med, q3 = quartiles(deltas_us)
    return {
        "base_us": base_us,
        "added_us": med,
        "added_q1_us": q1,
        "added_q3_us": q3,
        "added_pct": 100 * med / base_us if base_us else float("nan"),
        "rounds": len(deltas_us),
    }


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def emit(result: dict) -> None:
    """Benchmarks print one JSON object on their last line for run.py."""
    sys.stdout.write(json.dumps(result) + "\n")


def quick_run(description: str) -> bool:
    """The ``--quick`` flag every benchmark takes; ``--help`` explains, never runs."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds, wide spread")
    return parser.parse_args().quick
