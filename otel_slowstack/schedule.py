"""When each watched span is due: one processor's queue, and one span's timeline.

Pure bookkeeping, no thread and no clock of its own: the process's one
watchdog (``watchdog.py``) calls ``Schedule.run_due(now, ...)`` and sleeps
until the deadline it returns; the ordering rules are tested without threads
or sleeps (``tests/test_schedule.py``).

A span's deadlines, measured from its start on ``time.monotonic_ns``:

- the CPU baseline: shortly before the threshold (``baseline_lead``), the
  owner's CPU clock is read, so the first sample has a ``cpu_ratio`` without
  a clock read on the request's own thread;
- samples: at the threshold, then every interval, up to ``max_samples``;
- snapshots: at ``snapshot_after`` and each doubling of the age, skipping
  ages below the span's threshold (a route allowed 30 s is not snapshotted at
  10 s);
- the interrupt, once (retried while it cannot land, see ``interrupt.py``).

Spans enter through ``enqueue`` on their own thread: start time and id
appended to a FIFO ``Lane`` (one per first deadline, so each lane is sorted by
deadline already). No lock is taken and nothing is removed when a span ends:
the processor forgets the span, and its lane entry is dropped when it reaches
the head. An entry is a tuple of two ints, which the garbage collector does
not track. A span still open at its first deadline moves to a heap for the
later ones (``Timeline``); only the watchdog thread touches the heap.

Wake-ups. An enqueue wakes the watchdog only when the span's first deadline
is earlier than the watchdog's planned wake-up. A pass that finds a lane
emptied by spans that ended in time looks again when the newest of them
would have been due: steady traffic of fast requests costs one pass per
first deadline and no wake-up from the request threads, and when traffic
stops the watchdog sleeps without a timeout after that last look (zero
wake-ups idle; the next span wakes it).
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count
from typing import Any, Callable, Optional

from otel_slowstack import failures
from otel_slowstack.settings import Settings

#: ``on_due(watched, now_ns, batch)``; ``batch`` is shared by every span due in one pass.
OnDue = Callable[[Any, int, Any], None]

BASELINE = "baseline"
SAMPLE = "sample"
SNAPSHOT = "snapshot"
INTERRUPT = "interrupt"

#: The CPU baseline is read this share of the threshold before it...
BASELINE_SHARE = 10
#: ... but never more than this long before it (ns).
MAX_BASELINE_LEAD = 100_000_000


def baseline_lead(threshold_ns: int) -> int:
    return min(threshold_ns // BASELINE_SHARE, MAX_BASELINE_LEAD)


def first_snapshot(settings: Settings, threshold_ns: Optional[int]) -> Optional[int]:
    at = settings.snapshot_after_ns
    if not at:
        return None
    while threshold_ns is not None and at < threshold_ns:
        at *= 2
    return at


def first_due(settings: Settings, threshold_ns: Optional[int]) -> Optional[int]:
    """Offset from the start of a span's first deadline, or None if it has none."""
    offsets = [
        threshold_ns - baseline_lead(threshold_ns)
        if threshold_ns is not None and settings.max_samples > 0
        else None,
        first_snapshot(settings, threshold_ns),
        settings.interrupt_after_ns,
    ]
    present = [o for o in offsets if o is not None]
    return min(present) if present else None


class Timeline:
    """The watchdog's side of one watched span: its later deadlines and what
    the samples so far left behind.

    Made by the watchdog the first time the span is due, and touched by that
    thread only, except on the way down (``processor.end_open_spans`` and
    ``snapshot_open``, on a helper thread while the process stops).
    """

    #: Samples recorded on the span (``sample_taken``), and sample deadlines
    #: passed (a sample skipped because the thread had moved on counts here only).
    samples = 0
    slots = 0
    snapshots = 0
    baseline_at: Optional[int] = None
    sample_at: Optional[int] = None
    snapshot_at: Optional[int] = None
    interrupt_at: Optional[int] = None
    #: The owner's CPU clock and the time it was read: the next ``cpu_ratio``'s start.
    cpu_ns: Optional[int] = None
    cpu_at: Optional[int] = None
    #: The thread whose clock ``cpu_ns`` is (a pool thread may take over the work).
    cpu_thread: Optional[int] = None
    #: ``(cpu_ns, cpu_at, cpu_thread)`` as they were before the last sample: a
    #: snapshot due right after a sample measures from there (``sample.py``).
    previous_cpu: Optional[tuple] = None
    #: The interrupt: its sample taken, and how often delivery was tried (interrupt.py).
    interrupt_sampled = False
    interrupt_tries = 0

    def __init__(self, start_ns: int, threshold_ns: Optional[int], settings: Settings) -> None:
        self.start_ns = start_ns
        self.lay_out(threshold_ns, settings, start_ns)

    def lay_out(self, threshold_ns: Optional[int], settings: Settings, now_ns: int) -> None:
        """The four timelines from the span's start and threshold."""
        start = self.start_ns
        if threshold_ns is not None and settings.max_samples > self.slots:
            self.sample_at = start + threshold_ns
            lead = baseline_lead(threshold_ns)
            self.baseline_at = self.sample_at - lead if lead and self.sample_at - lead > now_ns else None
        else:
            self.sample_at = self.baseline_at = None
        snapshot = first_snapshot(settings, threshold_ns)
        self.snapshot_at = start + snapshot if snapshot is not None else None
        interrupt = settings.interrupt_after_ns
        self.interrupt_at = start + interrupt if interrupt is not None else None

    def sample_taken(self) -> int:
        """Count a sample recorded on the span; returns its index. The one place
        ``samples`` advances: a sample skipped (the thread moved on) takes no index."""
        self.samples += 1
        return self.samples

    def stop(self) -> None:
        """Nothing more is due: the final sample stays the last."""
        self.baseline_at = self.sample_at = self.snapshot_at = self.interrupt_at = None

    def next_due(self) -> Optional[int]:
        """The earliest pending deadline, or None when nothing is left to do."""
        due = None
        for at in (self.baseline_at, self.sample_at, self.snapshot_at, self.interrupt_at):
            if at is not None and (due is None or at < due):
                due = at
        return due

    def take_due(self, now_ns: int, settings: Settings) -> list:
        """Which events are due now; advances each timeline past ``now_ns``."""
        due = []
        if self.baseline_at is not None and self.baseline_at <= now_ns:
            self.baseline_at = None
            if self.sample_at is not None and self.sample_at > now_ns:
                due.append(BASELINE)
        if self.sample_at is not None and self.sample_at <= now_ns:
            due.append(SAMPLE)
            self.slots += 1
            interval = settings.interval_ns
            if self.slots >= settings.max_samples or interval is None:
                self.sample_at = None
            else:
                while self.sample_at <= now_ns:
                    self.sample_at += interval
        if self.snapshot_at is not None and self.snapshot_at <= now_ns:
            due.append(SNAPSHOT)
            self.snapshots += 1
            while self.snapshot_at <= now_ns:
                self.snapshot_at = self.start_ns + 2 * (self.snapshot_at - self.start_ns)
        if self.interrupt_at is not None and self.interrupt_at <= now_ns:
            due.append(INTERRUPT)
            self.interrupt_at = None
        return due


class Lane(deque):
    """``(start_ns, span_id)`` of spans with the same first deadline
    (``offset`` from their start), oldest first. Application threads append;
    only the watchdog pops."""

    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset


class Schedule:
    """Calls ``on_due`` at each deadline of each watched span of one processor.

    ``resolve(span_id)`` gives the span's ``Watched`` while it is open, None after.
    """

    def __init__(self, on_due: OnDue, resolve: Callable[[int], Any], waker: Any = None) -> None:
        self._on_due = on_due
        self._resolve = resolve
        #: What to wake when a new deadline is earlier than any it knows
        #: (``sleep_until``, ``wake()``): the process's watchdog.
        self._waker = waker
        self._lanes: dict[int, Lane] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every span (a forked child has none in flight). Lanes are
        emptied in place: the processor keeps them (``lane()``)."""
        for lane in list(self._lanes.values()):
            lane.clear()
        self._heap: list = []
        self._seq = count()
        self._forgotten = 0

    # -- application threads ---------------------------------------------

    def lane(self, offset: int) -> Lane:
        """The lane of spans first due ``offset`` ns after they start (``first_due``)."""
        lane = self._lanes.get(offset)
        if lane is None:
            lane = self._lanes.setdefault(offset, Lane(offset))
        return lane

    def enqueue(self, lane: Lane, start_ns: int, span_id: int) -> None:
        """Queue ``span_id``, waking the watchdog only if it sleeps past the span's first deadline."""
        lane.append((start_ns, span_id))
        waker = self._waker
        if waker is not None and start_ns + lane.offset < waker.sleep_until:
            waker.wake()

    def forget(self) -> bool:
        """A span that was due once has ended: its heap entry may go at the next
        pass. True for the first since the last pass (wake the watchdog then)."""
        self._forgotten += 1  # a lost increment only delays the clean-up
        return self._forgotten == 1

    def pending(self) -> int:
        """Entries still queued (those of ended spans included until passed)."""
        return sum(len(lane) for lane in list(self._lanes.values())) + len(self._heap)

    # -- the watchdog thread -----------------------------------------------

    def run_due(self, now: int, batch: Any, over_budget: Callable[[], bool]) -> Optional[int]:
        """Handle what is due at ``now``, oldest deadline first, until
        ``over_budget()``; return the next deadline (``now`` if some are left)."""
        next_at: Optional[int] = None
        if self._forgotten:
            self._forgotten = 0
            self._heap = [entry for entry in self._heap if not entry[2].ended]
            heapq.heapify(self._heap)
        resolve = self._resolve
        for lane in list(self._lanes.values()):
            offset = lane.offset
            newest = None  # start of the newest span this pass took off the lane
            at = None
            while lane:
                start_ns, span_id = lane[0]
                watched = resolve(span_id)
                if watched is None or watched.ended or watched.span_id != span_id:
                    lane.popleft()  # ended: nothing to wait for
                    newest = start_ns
                    continue
                at = start_ns + offset
                if at > now:
                    break
                if over_budget():
                    return now
                lane.popleft()
                newest = start_ns
                at = None
                self._fire(watched, now, batch)
            if at is None and newest is not None and newest + offset > now:
                # Spans start and end in time (steady traffic): look again when
                # the newest one taken off would have been due. Whatever starts
                # meanwhile is due later still, so none has to wake the
                # watchdog; and once spans stop, no look comes later than the
                # last one's first deadline.
                at = newest + offset
            if at is not None and (next_at is None or at < next_at):
                next_at = at
        heap = self._heap
        while heap:
            at, _, watched = heap[0]
            if watched.ended:
                heapq.heappop(heap)
                continue
            if at > now:
                if next_at is None or at < next_at:
                    next_at = at
                break
            if over_budget():
                return now
            heapq.heappop(heap)
            self._fire(watched, now, batch)
        return next_at

    def _fire(self, watched: Any, now: int, batch: Any) -> None:
        watched.fired = True
        try:
            self._on_due(watched, now, batch)
        except Exception as exc:  # contained: every other span goes on being watched
            failures.report(exc, "sampling failed; the watchdog carries on")
        timeline = watched.timeline
        if not watched.ended and timeline is not None:
            at = timeline.next_due()
            if at is not None:
                heapq.heappush(self._heap, (at, next(self._seq), watched))
