"""A watched span in flight, split by concern, and when it is next due.

``Watched`` is made in the span's own ``on_start`` and holds only what was
known then: the span, when it started, the thread (or task or greenlet) that
started it and the frame where its code begins. That is all a span that never
becomes slow ever costs. The rest hangs off it, made only when needed:

- ``timeline`` (``Timeline``): the schedule, laid out by the watchdog the
  first time the span is due, and touched by the watchdog thread only;
- ``calls`` (``counters.Calls``): database and HTTP calls counted as child
  spans end, on whichever threads the request handed work to;
- ``children``: the open descendant spans (``span_id -> span``), written by
  the threads that start and end them, read by the watchdog for
  ``slowstack.in_flight``;
- ``owner``: who runs the span's code, as an object that can read its stack
  (``owners.py``); for a plain thread it is only made when first asked for,
  by the watchdog.

``ended`` is set by the thread that ends the span, before anything else, and
every reader checks it.

Clock: ``time.monotonic_ns``. The timeline has four independent parts, each
measured from the span's start:

- the CPU baseline: shortly before the threshold, the owner's CPU clock is
  read once, so the first sample has a ``cpu_ratio`` without any clock read
  on the request's own thread;
- samples: at the threshold, then every interval, up to ``max_samples``;
- snapshots: at ``snapshot_after`` and each doubling of the age, skipping
  ages below the span's threshold (a route that is allowed 30 s is not
  snapshotted at 10 s);
- the interrupt, once.
"""

from __future__ import annotations

from types import FrameType
from typing import Any, Optional

from otel_slowstack.settings import Settings

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


def first_snapshot(settings: Settings, threshold_ns: Optional[int]) -> Optional[int]:
    at = settings.snapshot_after_ns
    if not at:
        return None
    while threshold_ns is not None and at < threshold_ns:
        at *= 2
    return at


class Watched:
    """A watched span in flight: what ``on_start`` knew, and the parts made later."""

    fired = False  # the watchdog has handled it once: it lives in the schedule's heap now
    ended = False
    timeline: Optional["Timeline"] = None
    calls: Any = None  # counters.Calls, once a child span has been counted
    children: Optional[dict] = None
    interrupt_state = 0  # see interrupt.py: IDLE, DECIDING, SENT
    #: The starter frame's instruction when the span started; read in
    #: ``on_start`` only when interrupts are on (see ``interrupt.scoped``).
    start_lasti = -1
    _owner: Any = None

    def __init__(
        self,
        span: Any,
        span_id: int,
        start_ns: int,
        threshold_ns: Optional[int],
        ident: int,
        starter: Optional[FrameType],
        owner: Any,
    ) -> None:
        self.span = span
        self.span_id = span_id
        self.start_ns = start_ns
        self.threshold_ns = threshold_ns
        self.ident = ident  # the thread that started the span
        self.starter = starter
        if owner is not None:  # a task or a greenlet, known only at the start
            self._owner = owner

    @property
    def owner(self) -> Any:
        """Who runs the span's code; None once the span has ended."""
        owner = self._owner
        if owner is None and not self.ended:
            from otel_slowstack.capture.owners import ThreadOwner

            owner = self._owner = ThreadOwner(self.ident, self.starter, self.start_lasti)
        return owner

    def release(self) -> None:
        """The span has ended: drop every reference to live objects."""
        owner = self._owner
        self.span = self._owner = self.starter = None
        self.children = None
        calls = self.calls
        if calls is not None:
            calls.release()
        if owner is not None:
            owner.release()


class Timeline:
    """When a slow span is next due; touched by the watchdog thread only."""

    samples = 0
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
    #: snapshot due right after a sample measures from there (``sampler.py``).
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
        if threshold_ns is not None and settings.max_samples > self.samples:
            self.sample_at = start + threshold_ns
            lead = baseline_lead(threshold_ns)
            self.baseline_at = self.sample_at - lead if lead and self.sample_at - lead > now_ns else None
        else:
            self.sample_at = self.baseline_at = None
        snapshot = first_snapshot(settings, threshold_ns)
        self.snapshot_at = start + snapshot if snapshot is not None else None
        interrupt = settings.interrupt_after_ns
        self.interrupt_at = start + interrupt if interrupt is not None else None

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
            self.samples += 1
            interval = settings.interval_ns
            if self.samples >= settings.max_samples or interval is None:
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
