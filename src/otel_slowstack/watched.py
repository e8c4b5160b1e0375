"""The state kept for one watched span, and when it is next due.

One ``Watched`` is made per local root span of a watched kind, in the span's
own ``on_start``. Its clock is ``time.monotonic_ns``. Its schedule has three
independent timelines, each measured from the span's start:

- samples: at the threshold, then every interval, up to ``max_samples``;
- snapshots: at ``snapshot_after`` and each doubling of the age, skipping
  ages below the span's threshold (a route that is allowed 30 s is not
  snapshotted at 10 s);
- the interrupt, once.
"""

from __future__ import annotations

from typing import Any, Optional

from .settings import Settings

SAMPLE = "sample"
SNAPSHOT = "snapshot"
INTERRUPT = "interrupt"


def first_due(settings: Settings, threshold_ns: Optional[int]) -> Optional[int]:
    """Offset from the start of a span's first deadline, or None if it has none."""
    offsets = [
        threshold_ns if threshold_ns is not None and settings.max_samples > 0 else None,
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
    """A watched span in flight; touched by its own thread and the watchdog only.

    ``on_start`` sets six fields and nothing else: every other field keeps its
    class-level default until something happens to the span (a child span,
    a deadline), and the schedule is only laid out (``arm``) when the
    watchdog first handles the span, which most spans never reach.
    """

    fired = False  # the watchdog has handled it once: it lives in the heap now
    armed = False  # its timelines are laid out
    ended = False
    samples = 0
    snapshots = 0
    sample_at: Optional[int] = None
    snapshot_at: Optional[int] = None
    interrupt_at: Optional[int] = None
    interrupt_state = 0  # see interrupt.py: IDLE, DECIDING, SENT
    db_count = 0
    db_ns = 0
    http_count = 0
    http_ns = 0
    #: normalised statement -> runs under this span (N+1 detection)
    statements: Optional[dict] = None
    #: (start, end, thread, statement) of the last database call counted
    db_last: Optional[tuple] = None
    #: ``slowstack.n_plus_one`` events added so far
    repeats_reported = 0
    #: the CPU baseline before the last sample's (see ``sampler._baseline``)
    previous_cpu_ns: Optional[int] = None
    previous_sample_ns = 0

    def __init__(
        self,
        span: Any,
        span_id: int,
        owner: Any,
        start_ns: int,
        cpu_start_ns: Optional[int],
        threshold_ns: Optional[int],
    ) -> None:
        self.span = span
        self.span_id = span_id
        self.owner = owner
        self.start_ns = self.last_sample_ns = start_ns
        self.last_cpu_ns = cpu_start_ns
        self.threshold_ns = threshold_ns
        self.open_children: dict = {}

    def arm(self, settings: Settings) -> None:
        """Lay out the three timelines from the span's start and threshold."""
        self.armed = True
        start, threshold = self.start_ns, self.threshold_ns
        self.sample_at = (
            start + threshold if threshold is not None and settings.max_samples > self.samples else None
        )
        snapshot = first_snapshot(settings, threshold)
        self.snapshot_at = start + snapshot if snapshot is not None else None
        interrupt = settings.interrupt_after_ns
        self.interrupt_at = start + interrupt if interrupt is not None else None

    def next_due(self) -> Optional[int]:
        """The earliest pending deadline, or None when nothing is left to do."""
        due = None
        for at in (self.sample_at, self.snapshot_at, self.interrupt_at):
            if at is not None and (due is None or at < due):
                due = at
        return due

    def take_due(self, now_ns: int, settings: Settings) -> list:
        """Which events are due now; advances each timeline past ``now_ns``."""
        due = []
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
