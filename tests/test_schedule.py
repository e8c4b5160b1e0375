"""The schedule's rules, driven by hand: a fake clock, a fake watchdog, no thread, no sleep.

``Schedule.run_due(now, ...)`` is what the watchdog calls at each pass; its
return value is when the watchdog would sleep until (None: until woken). The
fake watchdog records every ``wake()`` an enqueue asks for.
"""

from __future__ import annotations

from typing import Any, Optional

from otel_slowstack.schedule import (
    BASELINE, INTERRUPT, SAMPLE, SNAPSHOT, Schedule, Timeline, baseline_lead, first_due,
)
from otel_slowstack.settings import Settings

MS = 1_000_000
FOREVER = float("inf")


class FakeWatchdog:
    """Stands in for ``watchdog.Watchdog``: a planned wake-up and a count of kicks."""

    def __init__(self) -> None:
        self.sleep_until: float = FOREVER
        self.kicks = 0

    def wake(self) -> None:
        self.kicks += 1

    def plan(self, next_at: Optional[int]) -> None:
        self.sleep_until = FOREVER if next_at is None else next_at


class Record:
    """Stands in for ``Watched``: what the schedule reads and writes."""

    def __init__(self, span_id: int, start_ns: int, settings: Settings, threshold_ns: int) -> None:
        self.span_id = span_id
        self.ended = False
        self.fired = False
        self.timeline: Any = None
        self._start = start_ns
        self._settings = settings
        self._threshold = threshold_ns


class Harness:
    """A schedule for spans of one threshold, with what fired in order."""

    def __init__(self, threshold_ms: int = 1000, **settings: Any) -> None:
        self.settings = Settings.from_env(threshold=threshold_ms, **settings)
        self.threshold = self.settings.threshold_ns
        self.dog = FakeWatchdog()
        self.records: dict[int, Record] = {}
        self.fired: list = []  # (span_id, now, events)
        self.schedule = Schedule(self.on_due, self.records.get, self.dog)
        self.lane = self.schedule.lane(first_due(self.settings, self.threshold))
        self.passes = 0

    def on_due(self, record: Record, now: int, batch: Any) -> None:
        if record.timeline is None:
            record.timeline = Timeline(record._start, record._threshold, self.settings)
        self.fired.append((record.span_id, now, record.timeline.take_due(now, self.settings)))

    def start(self, span_id: int, at_ns: int) -> Record:
        record = self.records[span_id] = Record(span_id, at_ns, self.settings, self.threshold)
        self.schedule.enqueue(self.lane, at_ns, span_id)
        return record

    def end(self, span_id: int) -> None:
        record = self.records.pop(span_id)
        record.ended = True
        if record.fired:
            self.schedule.forget()

    def run(self, now: int) -> Optional[int]:
        """One pass of the watchdog at ``now``; returns (and plans) its next wake-up."""
        self.passes += 1
        next_at = self.schedule.run_due(now, None, lambda: False)
        self.dog.plan(next_at)
        return next_at


def test_first_due_is_the_cpu_baseline_shortly_before_the_threshold() -> None:
    settings = Settings.from_env(threshold=1000)
    assert baseline_lead(settings.threshold_ns) == 100 * MS
    assert first_due(settings, settings.threshold_ns) == 900 * MS
    assert first_due(Settings.from_env(threshold=200), 200 * MS) == 180 * MS
    assert first_due(settings, None) == settings.snapshot_after_ns  # a route that is "off" still snapshots
    assert first_due(Settings.from_env(threshold=1000, snapshot_after="off"), None) is None


def test_nothing_queued_means_no_wake_up() -> None:
    h = Harness()
    assert h.run(0) is None
    assert h.run(5_000 * MS) is None
    assert h.dog.kicks == 0 and h.fired == []


def test_a_span_wakes_a_sleeping_watchdog_once_and_is_due_at_its_first_deadline() -> None:
    h = Harness()
    h.start(1, 10 * MS)
    assert h.dog.kicks == 1  # the watchdog slept without a deadline
    assert h.run(11 * MS) == 910 * MS  # the baseline look, 100 ms before the threshold
    h.start(2, 20 * MS)
    assert h.dog.kicks == 1  # due after the planned wake-up: no kick
    assert h.run(910 * MS) == 920 * MS
    assert h.fired == [(1, 910 * MS, [BASELINE])]
    assert h.run(920 * MS) == 1010 * MS  # span 1's sample, from the heap
    assert h.fired[1] == (2, 920 * MS, [BASELINE])


def test_due_order_is_oldest_first_in_each_lane_and_by_deadline_in_the_heap() -> None:
    h = Harness()
    other = h.schedule.lane(first_due(h.settings, 300 * MS))  # a route with a shorter threshold
    for span_id, start in ((1, 0), (2, 5 * MS), (3, 10 * MS)):
        h.start(span_id, start)
    h.records[4] = Record(4, 1 * MS, h.settings, 300 * MS)
    h.schedule.enqueue(other, 1 * MS, 4)
    h.run(2_000 * MS)  # the watchdog was late: everything is due at once
    order = [span_id for span_id, _, _ in h.fired]
    assert sorted(order) == [1, 2, 3, 4] and [i for i in order if i != 4] == [1, 2, 3]  # each lane oldest first
    assert [events for _, _, events in h.fired] == [[SAMPLE]] * 4  # too late for a baseline
    # The interval samples (every second) come from the heap, by deadline:
    # 2 at 2005 ms, 3 at 2010, 4 at 2301 (started 1 ms, threshold 300), 1 at 3000.
    del h.fired[:]
    now = h.run(2_000 * MS + 1)
    while len(h.fired) < 4:
        now = h.run(now)
    assert [(span_id, at // MS) for span_id, at, _ in h.fired] == [(2, 2005), (3, 2010), (4, 2301), (1, 3000)]


def test_ended_spans_are_dropped_without_firing() -> None:
    h = Harness()
    h.start(1, 0)
    h.start(2, 1 * MS)
    h.end(1)
    h.end(2)
    # Both ended: nothing fires. One look more, when the newest would have
    # been due (a span started meanwhile would be due no earlier), then none.
    assert h.run(900 * MS) == 901 * MS
    assert h.run(901 * MS) is None
    assert h.fired == [] and h.schedule.pending() == 0


def test_a_slow_span_that_ends_leaves_the_heap_at_the_next_pass() -> None:
    h = Harness()
    h.start(1, 0)
    h.run(900 * MS)  # baseline: into the heap
    assert h.schedule.pending() == 1
    h.end(1)
    assert h.run(901 * MS) is None
    assert h.schedule.pending() == 0 and len(h.fired) == 1


def test_steady_fast_traffic_costs_one_look_per_first_deadline_and_no_kick() -> None:
    h = Harness()  # threshold 1 s: spans are first due 900 ms after they start
    period = 2 * MS  # 500 requests a second, each ending within a millisecond
    h.start(0, 0)
    h.end(0)
    next_at = h.run(0)  # the kicked pass
    span_id, now = 1, 0
    looks = []
    while now < 10_000 * MS:
        now += period
        h.start(span_id, now)
        h.end(span_id)
        span_id += 1
        if next_at is not None and now + period > next_at:
            next_at = h.run(next_at)
            looks.append(h.passes)
    assert h.dog.kicks == 1  # only the very first span woke the watchdog
    assert h.fired == []
    # One look per 900 ms (the baseline's offset), each from the newest span's start.
    assert 10 <= len(looks) <= 12, len(looks)
    # Traffic stops: the looks end, none later than the last span's first deadline.
    last_start = now
    while next_at is not None:
        assert next_at <= last_start + 900 * MS
        next_at = h.run(next_at)
    assert h.schedule.pending() == 0 and h.dog.sleep_until == FOREVER


def test_spans_started_between_looks_are_due_in_time() -> None:
    h = Harness()
    h.start(1, 0)
    h.end(1)
    next_at = h.run(1 * MS)
    assert next_at == 900 * MS  # a look when span 1 would have been due
    slow = h.start(2, 3 * MS)  # after the pass: due at 903 ms, later than the look
    assert h.dog.kicks == 1
    assert h.run(next_at) == 903 * MS
    h.run(903 * MS)
    assert h.fired == [(2, 903 * MS, [BASELINE])]
    assert slow.fired


def test_a_span_due_before_the_planned_wake_up_kicks_the_watchdog() -> None:
    h = Harness()
    far = h.schedule.lane(first_due(h.settings, 10_000 * MS))
    h.records[1] = Record(1, 0, h.settings, 10_000 * MS)
    h.schedule.enqueue(far, 0, 1)
    h.run(0)
    assert h.dog.sleep_until == 9_900 * MS
    kicks = h.dog.kicks
    h.start(2, 1 * MS)  # due at 901 ms, before the planned 9.9 s
    assert h.dog.kicks == kicks + 1


def test_one_sample_per_interval_up_to_max_samples_then_nothing() -> None:
    h = Harness(threshold_ms=100, interval=50, max_samples=3, snapshot_after="off")
    h.start(1, 0)
    now = h.run(0)
    events = []
    while now is not None:
        now = h.run(now)
        events.append(h.fired[-1][2])
    assert events == [[BASELINE], [SAMPLE], [SAMPLE], [SAMPLE]]
    assert h.records[1].timeline.slots == 3


def test_timeline_snapshots_double_and_the_interrupt_comes_once() -> None:
    settings = Settings.from_env(threshold=1000, snapshot_after=2000, interrupt_after=3000, max_samples=1)
    timeline = Timeline(0, 1000 * MS, settings)
    assert timeline.next_due() == 900 * MS
    seen = []
    for now in (900, 1000, 2000, 3000, 4000, 8000):
        seen.append(timeline.take_due(now * MS, settings))
    assert seen == [[BASELINE], [SAMPLE], [SNAPSHOT], [INTERRUPT], [SNAPSHOT], [SNAPSHOT]]
    assert timeline.snapshots == 3
    assert timeline.next_due() == 16_000 * MS


def test_samples_advance_only_when_one_is_recorded() -> None:
    settings = Settings.from_env(threshold=100, interval=100, max_samples=5)
    timeline = Timeline(0, 100 * MS, settings)
    timeline.take_due(100 * MS, settings)  # a slot passes; its sample skipped (the thread moved on)
    assert (timeline.slots, timeline.samples) == (1, 0)
    timeline.take_due(200 * MS, settings)
    assert timeline.sample_taken() == 1  # the first sample recorded is index 1
    assert (timeline.slots, timeline.samples) == (2, 1)
