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


def first_snapshot(settings: Settings, threshold_ns: Optional[int]) -> Optional[int]:
    at = settings.snapshot_after_ns
    if not at:
        return None
    while threshold_ns is not None and at < threshold_ns:
        at *= 2
    return at


class Watched:
    """A watched span in flight; touched by its own thread and the watchdog only."""

    __slots__ = (
        "span",
        "span_id",
        "owner",
        "start_ns",
        "cpu_start_ns",
        "threshold_ns",
        "ended",
        "fired",
        "samples",
        "snapshots",
        "sample_at",
        "snapshot_at",
        "interrupt_at",
        "interrupt_state",
        "last_sample_ns",
        "last_cpu_ns",
        "db_count",
        "db_ns",
        "http_count",
        "http_ns",
        "open_children",
        "statements",
        "db_last",
        "repeats_reported",
    )

    def __init__(
        self,
        span: Any,
        span_id: int,
        owner: Any,
        start_ns: int,
        cpu_start_ns: Optional[int],
        threshold_ns: Optional[int],
        settings: Settings,
    ) -> None:
        self.span = span
        self.span_id = span_id
        self.owner = owner
        self.start_ns = start_ns
        self.cpu_start_ns = cpu_start_ns
        self.threshold_ns = threshold_ns
        self.ended = False
        self.fired = False  # the watchdog has handled it once: it lives in the heap now
        self.samples = 0
        self.snapshots = 0
        self.sample_at = (
            start_ns + threshold_ns
            if threshold_ns is not None and settings.max_samples > 0
            else None
        )
        snapshot = first_snapshot(settings, threshold_ns)
        self.snapshot_at = start_ns + snapshot if snapshot is not None else None
        interrupt = settings.interrupt_after_ns
        self.interrupt_at = start_ns + interrupt if interrupt is not None else None
        self.interrupt_state = 0  # see interrupt.py: IDLE, DECIDING, SENT
        self.last_sample_ns = start_ns
        self.last_cpu_ns = cpu_start_ns
        self.db_count = 0
        self.db_ns = 0
        self.http_count = 0
        self.http_ns = 0
        self.open_children: dict = {}
        #: normalised statement -> runs under this span (N+1 detection)
        self.statements: Optional[dict] = None
        #: (start, end, thread, statement) of the last database call counted
        self.db_last: Optional[tuple] = None
        #: ``slowstack.n_plus_one`` events added so far
        self.repeats_reported = 0

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
