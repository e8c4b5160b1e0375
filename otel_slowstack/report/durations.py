"""Request durations in bounded memory: a log-scale histogram.

A route can see millions of requests; its percentiles need not cost a
float each. Buckets grow by 1 %, so a percentile is read to within 1 % of
the true duration, and a route holds at most a few thousand buckets
(1 µs to ~11 days) whatever the traffic.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional

_GROWTH = 1.01
_LOG = math.log(_GROWTH)
_FLOOR_MS = 0.001


class Durations:
    """Count, sum and approximate percentiles of durations in milliseconds."""

    __slots__ = ("count", "total_ms", "_buckets", "_max_ms")

    def __init__(self) -> None:
        self.count = 0
        self.total_ms = 0.0
        self._buckets: Counter = Counter()
        self._max_ms = 0.0

    def add(self, ms: float) -> None:
        if not math.isfinite(ms) or ms < 0:
            return
        self.count += 1
        self.total_ms += ms
        self._max_ms = max(self._max_ms, ms)
        self._buckets[math.ceil(math.log(max(ms, _FLOOR_MS) / _FLOOR_MS) / _LOG)] += 1

    def percentile(self, fraction: float) -> Optional[float]:
        """The duration under which ``fraction`` of the requests fall (upper bucket bound, capped at the maximum)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                return min(_FLOOR_MS * _GROWTH ** bucket, self._max_ms)
        return self._max_ms
