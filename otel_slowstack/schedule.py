"""The deadlines of one processor's watched spans: which are due, and when next.

Pure bookkeeping, no thread and no clock of its own: the process's one
watchdog (``watchdog.py``) calls ``run_due(now, ...)`` and sleeps until the
deadline it returns. Kept apart so that the ordering rules can be tested
without threads or sleeps.

Spans enter through ``enqueue`` on their own thread: their start time and id
appended to a FIFO "lane" (one per first-deadline offset, so each lane is
already sorted by deadline). No lock is taken and nothing is removed when a
span ends: the processor forgets the span, and the lane entry is dropped when
it reaches the head of its lane. A lane entry is a tuple of two ints, which
the garbage collector does not track, so even (request rate x offset) of them
(30 s routes at 1,000 requests a second: 30,000 entries, about 3 MB) cost no
collection time. Spans that become slow move to a private heap for their
later deadlines; only the watchdog thread touches the heap.
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count
from typing import Any, Callable, Optional

from otel_slowstack import failures

#: ``on_due(watched, now_ns, batch)``; ``batch`` is shared by every span due in one pass.
OnDue = Callable[[Any, int, Any], None]


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
        self.reset()

    def reset(self) -> None:
        """Forget everything (a forked child starts with no span in flight)."""
        self._lanes: dict[int, deque] = {}
        self._heap: list = []
        self._seq = count()
        self._forgotten = 0
        self._enqueued = 0

    # -- application threads ---------------------------------------------

    def enqueue(self, start_ns: int, span_id: int, offset_ns: int) -> None:
        """Queue ``span_id`` for ``start_ns + offset_ns``, waking the watchdog
        only if it sleeps past that."""
        lane = self._lanes.get(offset_ns)
        if lane is None:
            lane = self._lanes.setdefault(offset_ns, deque())
        lane.append((start_ns, span_id))
        self._enqueued += 1  # a lost increment is harmless: any count above 0 will do
        waker = self._waker
        if waker is not None and start_ns + offset_ns < waker.sleep_until:
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
        enqueued, self._enqueued = self._enqueued, 0
        for offset, lane in list(self._lanes.items()):
            while lane:
                start_ns, span_id = lane[0]
                watched = resolve(span_id)
                if watched is None or watched.ended or watched.span_id != span_id:
                    lane.popleft()  # ended: nothing to wait for
                    continue
                due = start_ns + offset
                if due > now:
                    if next_at is None or due < next_at:
                        next_at = due
                    break
                if over_budget():
                    return now
                lane.popleft()
                self._fire(watched, now, batch)
        if next_at is None and enqueued and self._lanes:
            # Every span queued since the last pass has ended already: steady
            # traffic of fast requests. Look again one offset from now rather
            # than sleep for good, so that the next request does not have to
            # wake the watchdog: about one wake-up per offset, not one per
            # request. With no traffic at all, the next pass sleeps for good.
            next_at = now + min(self._lanes)
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
