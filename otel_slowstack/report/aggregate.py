"""Samples in, per-route counters out, one span at a time.

Memory grows with the number of distinct frames, stacks and routes, never
with the number of samples, so a 1 GB file costs what its distinct code
paths cost. Even those are capped (routes built from raw URL paths can be
unbounded): past the caps, the rest is counted under an "other" entry.

Every server and consumer span also counts for its route's worker time
(``Durations``: count, total, percentiles) and database time, sampled or
not: that is the ranking the report opens with.

Snapshot spans (``slowstack.snapshot``) are children of the span they
sample; their samples count for the parent's route and request. A file
usually holds the snapshot before its parent (it ended first), a trace
from Jaeger or Tempo holds them in any order, and a parent killed with
SIGKILL never arrives: that request was killed, and its samples are
reported under the route its snapshots name (``slowstack.subject.*``), else
as ``(request never ended)``. A request whose span arrived but whose last
sample was taken by a signal, at shutdown or by an interrupt did not finish
either; both kinds are counted per route as ``Killed`` outcomes.
"""

from __future__ import annotations

import fnmatch
import heapq
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Optional

from otel_slowstack.conventions import (
    DB_DURATION_MS,
    SNAPSHOT_SPAN,
    TRIGGER_INTERRUPT,
    TRIGGER_SHUTDOWN,
    TRIGGER_SIGNAL,
)

from .durations import Durations
from .samples import NPlusOne, Sample, in_flight_parts, n_plus_ones_of, route_of, samples_of, snapshot_route
from .sources.record import SpanRecord
from .stacks import Frame

MAX_ROUTES = 500
MAX_STACKS_PER_ROUTE = 20_000
MAX_KNOWN_SPANS = 20_000
MAX_PENDING_SAMPLES = 20_000
MAX_KILLED_LISTED = 10
OTHER_ROUTES = "(other routes)"
NEVER_ENDED = "(request never ended)"
OTHER_STACKS = (Frame("", 0, "[other stacks]", False),)
NO_STACK = (Frame("", 0, "[no stack recorded]", False),)
#: cpu_ratio at or above: computing; at or below WAITING: waiting.
COMPUTING = 0.6
WAITING = 0.3
#: A request whose last sample has one of these triggers did not finish its work.
#: A snapshot span whose request span never arrived is ``killed``: its worker
#: died (SIGKILL, OOM killer) before the request's span could be exported.
OUTCOMES = {
    "killed": "killed, its span never arrived",
    TRIGGER_SIGNAL: "aborted by a signal",
    TRIGGER_SHUTDOWN: "cut short at shutdown",
    TRIGGER_INTERRUPT: "interrupted",
}


@dataclass
class Killed:
    """One request that did not finish: its last word."""

    outcome: str  # a key of OUTCOMES
    trace_id: str
    elapsed_ms: Optional[float]
    frames: tuple


@dataclass
class FrameRank:
    frame: Frame
    innermost: int
    on_stack: int
    innermost_share: float
    on_stack_share: float


@dataclass
class NPlusOneStats:
    statement: str
    requests: int = 0
    max_count: int = 0
    total_count: int = 0
    frames: tuple = ()
    trace_id: str = ""

    def where(self) -> Optional[Frame]:
        """The innermost application frame that issued the statement."""
        for frame in reversed(self.frames):
            if frame.is_app and not frame.is_elided:
                return frame
        return self.frames[-1] if self.frames else None


@dataclass
class RouteStats:
    route: str
    requests: int = 0
    samples: int = 0
    stacks: Counter = field(default_factory=Counter)
    triggers: Counter = field(default_factory=Counter)
    in_flight: Counter = field(default_factory=Counter)
    in_flight_max_ms: dict = field(default_factory=dict)
    cpu_sum: float = 0.0
    cpu_samples: int = 0
    n_plus_one: dict = field(default_factory=dict)
    services: Counter = field(default_factory=Counter)
    #: (elapsed_ms, trace_id, span_id) of the longest-sampled requests, a min-heap.
    slowest: list = field(default_factory=list)
    #: Every request of the route (sampled or not): durations, database time.
    durations: Durations = field(default_factory=Durations)
    db_ms: float = 0.0
    #: Requests that did not finish, per outcome, and the first few of them.
    killed: Counter = field(default_factory=Counter)
    killed_listed: list = field(default_factory=list)
    #: (outcome, stack) -> how many killed requests ended on that stack.
    killed_stacks: Counter = field(default_factory=Counter)
    #: Whole-window totals from the backend (Tempo's TraceQL metrics), when it gave them.
    window: Optional[object] = None
    _frames_view: Optional[tuple] = field(default=None, repr=False)

    def add(self, sample: Sample, frames: tuple, request_id: str = "") -> None:
        """The hot path: one sample costs a few counter increments. Per-frame
        figures are derived from the distinct stacks when first asked for."""
        self.samples += 1
        self._frames_view = None
        stack = frames or NO_STACK
        if stack in self.stacks or len(self.stacks) < MAX_STACKS_PER_ROUTE:
            self.stacks[stack] += 1
        else:
            self.stacks[OTHER_STACKS] += 1
        self.triggers[sample.trigger or "?"] += 1
        if sample.cpu_ratio is not None and math.isfinite(sample.cpu_ratio):
            self.cpu_sum += min(max(sample.cpu_ratio, 0.0), 1.0)
            self.cpu_samples += 1
        if sample.in_flight:
            name, age = in_flight_parts(sample.in_flight)
            if name in self.in_flight or len(self.in_flight) < 1000:
                self.in_flight[name] += 1
                if age is not None and age > self.in_flight_max_ms.get(name, -1.0):
                    self.in_flight_max_ms[name] = age
        if sample.service:
            self.services[sample.service] += 1
        if sample.elapsed_ms is not None:
            self._note_elapsed(sample, request_id or sample.span_id)

    def _note_elapsed(self, sample: Sample, request_id: str) -> None:
        entry = (sample.elapsed_ms, sample.trace_id, request_id)
        for i, known in enumerate(self.slowest):
            if known[2] == request_id:
                if known[0] < sample.elapsed_ms:
                    self.slowest[i] = entry
                    heapq.heapify(self.slowest)
                return
        if len(self.slowest) < 5:
            heapq.heappush(self.slowest, entry)
        elif entry > self.slowest[0]:
            heapq.heapreplace(self.slowest, entry)

    def _frames(self) -> tuple:
        """(innermost, on_stack, depth, innermost_app) counters, from the distinct stacks."""
        if self._frames_view is None:
            innermost: Counter = Counter()
            on_stack: Counter = Counter()
            depth: Counter = Counter()
            innermost_app: Counter = Counter()
            for stack, count in self.stacks.items():
                innermost[stack[-1]] += count
                for frame in set(stack):
                    on_stack[frame] += count
                for position, frame in enumerate(stack):
                    depth[frame] += position * count
                for frame in reversed(stack):
                    if frame.is_app and not frame.is_elided:
                        innermost_app[frame] += count
                        break
            self._frames_view = (innermost, on_stack, depth, innermost_app)
        return self._frames_view

    @property
    def innermost(self) -> Counter:
        return self._frames()[0]

    @property
    def on_stack(self) -> Counter:
        return self._frames()[1]

    @property
    def innermost_app(self) -> Counter:
        return self._frames()[3]

    def add_n_plus_one(self, finding: NPlusOne, frames: tuple) -> None:
        stats = self.n_plus_one.get(finding.statement)
        if stats is None:
            if len(self.n_plus_one) >= 200:
                return
            stats = self.n_plus_one[finding.statement] = NPlusOneStats(finding.statement, frames=frames, trace_id=finding.trace_id)
        stats.requests += 1
        stats.total_count += finding.count
        if finding.count > stats.max_count:
            stats.max_count = finding.count
            stats.trace_id = finding.trace_id
            if frames:
                stats.frames = frames

    def add_killed(self, killed: Killed) -> None:
        self.killed[killed.outcome] += 1
        if len(self.killed_stacks) < MAX_STACKS_PER_ROUTE:
            self.killed_stacks[(killed.outcome, killed.frames)] += 1
        if len(self.killed_listed) < MAX_KILLED_LISTED:
            self.killed_listed.append(killed)

    # -- views for the renderers ----------------------------------------------

    @property
    def killed_total(self) -> int:
        return sum(self.killed.values())

    def figures(self) -> tuple:
        """(requests, total ms, p50, p95, p99): the backend's whole-window totals if any, else the spans read."""
        window = self.window
        if window is not None:
            return (window.count, window.total_ms, window.p50_ms, window.p95_ms, window.p99_ms)  # type: ignore[attr-defined]
        d = self.durations
        return (d.count, d.total_ms, d.percentile(0.50), d.percentile(0.95), d.percentile(0.99))

    def share_of(self, part_ms: float) -> Optional[float]:
        total = self.durations.total_ms
        return min(part_ms / total, 1.0) if total > 0 else None

    @property
    def cpu_mean(self) -> Optional[float]:
        return self.cpu_sum / self.cpu_samples if self.cpu_samples else None

    def hottest(self, limit: int = 10) -> list:
        """Frames by share of samples where innermost, then on the stack, then deepest first."""
        innermost, on_stack, depth, _ = self._frames()
        total = max(self.samples, 1)
        ranked = sorted(
            (f for f in on_stack if not f.is_elided),
            key=lambda f: (-innermost.get(f, 0), -on_stack[f], -depth[f] / on_stack[f], f.file, f.line),
        )
        return [
            FrameRank(f, innermost.get(f, 0), on_stack[f], innermost.get(f, 0) / total, on_stack[f] / total)
            for f in ranked[:limit]
        ]

    def top_stacks(self, limit: int = 3) -> list:
        return self.stacks.most_common(limit)

    def n_plus_ones(self) -> list:
        return sorted(self.n_plus_one.values(), key=lambda s: (-s.max_count, -s.requests, s.statement))

    def slowest_requests(self) -> list:
        return sorted(self.slowest, reverse=True)

    def kind(self) -> str:
        """``computing``, ``waiting``, ``mixed`` or ``unknown``, from the CPU ratio."""
        cpu = self.cpu_mean
        if cpu is None:
            return "unknown"
        if cpu >= COMPUTING:
            return "computing"
        if cpu <= WAITING:
            return "waiting"
        return "mixed"

    def verdict(self) -> str:
        """One line: waiting or computing, where, and the call most often in flight."""
        cpu = self.cpu_mean
        kind = self.kind()
        if kind == "computing":
            head = f"computing: CPU {cpu:.0%} of wall time"
        elif kind == "waiting":
            head = f"waiting: CPU {cpu:.0%} of wall time"
        elif kind == "mixed":
            head = f"partly computing, partly waiting: CPU {cpu:.0%} of wall time"
        elif not self.samples:
            head = "no request slow enough to be sampled"
        else:
            head = "no CPU figures recorded"
        parts = [head]
        if self.innermost_app:
            frame, count = self.innermost_app.most_common(1)[0]
            parts.append(f"in {frame.function} ({frame.location()}) in {count / max(self.samples, 1):.0%} of samples")
        if self.in_flight:
            name, count = self.in_flight.most_common(1)[0]
            text = f"in flight: {name} in {count / max(self.samples, 1):.0%} of samples"
            longest = self.in_flight_max_ms.get(name)
            if longest is not None:
                text += f", up to {longest:.0f} ms"
            parts.append(text)
        if self.n_plus_one:
            worst = self.n_plus_ones()[0]
            parts.append(f"N+1: {worst.max_count}x {_clip(worst.statement, 60)}")
        return "; ".join(parts)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Report:
    source: str
    routes: list
    spans_read: int
    requests: int
    samples: int
    n_plus_ones: int
    notes: list = field(default_factory=list)
    #: Routes by worker time consumed, most first (every route with requests or samples).
    ranking: list = field(default_factory=list)
    #: What the request counts and times cover, in words.
    coverage: str = ""
    killed: int = 0
    total_ms: float = 0.0
    calls: int = 0

    @property
    def empty(self) -> bool:
        return not self.samples and not self.n_plus_ones and not self.killed

    def killed_routes(self) -> list:
        """Routes with requests that did not finish, most first."""
        return sorted((r for r in self.routes if r.killed), key=lambda r: (-r.killed_total, r.route))


class Aggregator:
    """Feed it spans with ``add_span``; ``finish`` gives the ``Report``."""

    def __init__(self, source: str = "", route_pattern: Optional[str] = None) -> None:
        self.source = source
        self.route_pattern = route_pattern
        self.routes: dict = {}
        self.spans_read = 0
        self.requests = 0
        self.samples = 0
        self.n_plus_ones = 0
        self.notes: list = []
        self._stacks: dict = {}
        #: span id -> [route, counted]: watched spans seen, for snapshots arriving late.
        self._known: OrderedDict = OrderedDict()
        #: parent span id -> [(snapshot route or None, Sample), ...] waiting for the parent.
        self._pending: dict = {}
        self._pending_count = 0
        self._dropped_pending = 0
        self.coverage = ""
        self.killed = 0
        #: route -> totals over the whole window, from the backend (see ``sources.tempo_metrics``).
        self.window: Optional[dict] = None

    def add_spans(self, spans: Iterable[SpanRecord]) -> None:
        for span in spans:
            self.add_span(span)

    def add_span(self, span: SpanRecord) -> None:
        self.spans_read += 1
        if span.name == SNAPSHOT_SPAN and span.parent_span_id:
            self._add_snapshot(span)
            return
        # Server and consumer spans are remembered even without events: a
        # trace from a backend may list a snapshot after its parent.
        root_kind = span.kind in ("server", "consumer")
        if not span.events and not root_kind and span.span_id not in self._pending:
            return
        route = route_of(span)
        findings = n_plus_ones_of(span, route)
        if findings:
            stats = self._stats(route)
            for finding in findings if stats is not None else ():
                stats.add_n_plus_one(finding, self._intern(finding.frames))
                self.n_plus_ones += 1
        samples = samples_of(span, route)
        waiting = self._pending.pop(span.span_id, ())
        self._pending_count -= len(waiting)
        if samples or waiting or root_kind:
            self._remember(span.span_id, route)
        if root_kind:
            self._add_request(route, span, samples)
        for sample in samples:
            self._add_sample(route, span.span_id, sample)
        for _route, sample in waiting:
            self._add_sample(route, span.span_id, sample)

    def _add_request(self, route: str, span: SpanRecord, samples: list) -> None:
        """Every server/consumer span counts for its route's worker time."""
        stats = self._stats(route)
        if stats is None:
            return
        stats.durations.add(span.duration_ms)
        db_ms = span.attributes.get(DB_DURATION_MS)
        if isinstance(db_ms, (int, float)) and not isinstance(db_ms, bool) and math.isfinite(db_ms) and db_ms > 0:
            stats.db_ms += min(float(db_ms), span.duration_ms)
        if samples:
            last = max(samples, key=lambda s: (s.elapsed_ms or 0.0, s.index))
            if last.trigger in OUTCOMES:
                self._add_killed(stats, Killed(last.trigger, span.trace_id, last.elapsed_ms, self._intern(last.frames)))

    def _add_killed(self, stats: RouteStats, killed: Killed) -> None:
        stats.add_killed(killed)
        self.killed += 1

    def _add_snapshot(self, span: SpanRecord) -> None:
        own_route = snapshot_route(span)
        samples = samples_of(span, own_route or "")
        known = self._known.get(span.parent_span_id)
        if known is not None:
            for sample in samples:
                self._add_sample(known[0], span.parent_span_id, sample)
            return
        for sample in samples:
            if self._pending_count >= MAX_PENDING_SAMPLES:
                self._dropped_pending += 1
                self._add_sample(own_route or NEVER_ENDED, span.parent_span_id, sample)
                continue
            self._pending.setdefault(span.parent_span_id, []).append((own_route, sample))
            self._pending_count += 1

    def _remember(self, span_id: str, route: str) -> None:
        if span_id in self._known:
            self._known.move_to_end(span_id)
            return
        self._known[span_id] = [route, False]
        if len(self._known) > MAX_KNOWN_SPANS:
            self._known.popitem(last=False)

    def _add_sample(self, route: str, request_id: str, sample: Sample) -> None:
        stats = self._stats(route)
        if stats is None:
            return
        known = self._known.get(request_id)
        if known is None:
            self._remember(request_id, route)
            known = self._known[request_id]
        if not known[1]:
            known[1] = True
            stats.requests += 1
            self.requests += 1
        stats.add(sample, self._intern(sample.frames), request_id)
        self.samples += 1

    def _stats(self, route: str) -> Optional[RouteStats]:
        stats = self.routes.get(route)
        if stats is not None:
            return stats
        if self.route_pattern and not _matches(self.route_pattern, route):
            return None
        if len(self.routes) >= MAX_ROUTES:
            route = OTHER_ROUTES
            stats = self.routes.get(route)
            if stats is not None:
                return stats
        stats = self.routes[route] = RouteStats(route)
        return stats

    def _intern(self, frames: tuple) -> tuple:
        """One tuple object per distinct stack, however many samples share it."""
        table = self._stacks
        if len(table) > 100_000:
            table.clear()
        return table.setdefault(frames, frames)

    def finish(self) -> Report:
        # Snapshots whose request never arrived: the request died with its worker.
        for parent_id, items in self._pending.items():
            route = next((r for r, _ in items if r), None) or NEVER_ENDED
            for _own_route, sample in items:
                self._add_sample(route, parent_id, sample)
            stats = self._stats(route)
            if stats is not None and items:
                last = max((s for _, s in items), key=lambda s: (s.elapsed_ms or 0.0, s.index))
                stats.durations.add(last.elapsed_ms or 0.0)  # at least this long
                self._add_killed(stats, Killed("killed", last.trace_id, last.elapsed_ms, self._intern(last.frames)))
        self._pending.clear()
        self._pending_count = 0
        if self._dropped_pending:
            self.notes.append(f"{self._dropped_pending} snapshot samples could not wait for their request's span")
        for route, totals in (self.window or {}).items():
            stats = self._stats(route)
            if stats is not None and stats.window is None:
                stats.window = totals
        routes = sorted(self.routes.values(), key=lambda r: (-r.samples, -r.requests, r.route))
        ranking = sorted(
            (r for r in self.routes.values() if r.durations.count or r.samples or r.window is not None),
            key=lambda r: (-r.figures()[1], -r.samples, r.route),
        )
        report = Report(self.source, [r for r in routes if r.samples or r.n_plus_one or r.killed], self.spans_read,
                        self.requests, self.samples, self.n_plus_ones, list(self.notes))
        report.ranking = ranking
        report.coverage = self.coverage
        report.killed = self.killed
        report.total_ms = sum(r.figures()[1] for r in ranking)
        report.calls = sum(r.figures()[0] for r in ranking)
        return report


def _matches(pattern: str, route: str) -> bool:
    if fnmatch.fnmatchcase(route, pattern):
        return True
    _, _, path = route.partition(" ")
    return bool(path) and fnmatch.fnmatchcase(path, pattern)
