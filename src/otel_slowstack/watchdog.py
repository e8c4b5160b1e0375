"""One thread per process that sleeps until the next watched span is due.

Spans enter through ``enqueue`` on their own thread: their start time and id
appended to a FIFO "lane" (one per first-deadline offset, so each lane is
already sorted by deadline) and, only when the new deadline is earlier than
the one the watchdog sleeps towards, a wake-up. No lock is taken for the
common case and nothing is removed when a span ends: the processor forgets
the span, and the watchdog drops the entry when it reaches the head of its
lane. A lane entry is a tuple of two ints, which the garbage collector does
not track, so even (request rate x offset) of them (30 s routes at 1,000
requests a second: 30,000 entries, about 3 MB) cost no collection time. Spans that become
slow move to a private heap for their later samples.

With nothing in flight the thread waits without a timeout: zero wake-ups.
It is started lazily, and rebuilt in a forked child (gunicorn workers, with
or without ``--preload``), like the SDK's batch processor.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
import weakref
from collections import deque
from itertools import count
from typing import Any, Callable, Optional

from . import realthread

_logger = logging.getLogger("otel_slowstack")
_FOREVER = float("inf")


class Watchdog:
    """Calls ``on_due(watched, now_ns)`` at each deadline of each watched span.

    ``resolve(span_id)`` gives the span's ``Watched`` while it is open, None after.
    """

    def __init__(self, on_due: Callable[[Any, int], None], resolve: Callable[[int], Any]) -> None:
        self._on_due = on_due
        self._resolve = resolve
        self.thread_ident: Optional[int] = None
        self.wakeups = 0
        self._failures: set = set()
        self._reset()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._reset)
            os.register_at_fork(after_in_child=lambda: (ref() or (lambda: None))())

    def _reset(self) -> None:
        """Fresh state; in a forked child the parent's thread does not exist."""
        self._lanes: dict[int, deque] = {}
        self._heap: list = []
        self._seq = count()
        self._mutex = realthread.allocate_lock()
        self._signal = realthread.allocate_lock()
        self._signal.acquire()
        self._kick = False
        self._stopped = False
        self._started = False
        self.sleep_until: float = _FOREVER
        self.thread_ident = None

    # -- called on application threads -----------------------------------

    def enqueue(self, start_ns: int, span_id: int, offset_ns: int) -> None:
        """Call back for ``span_id`` at ``start_ns + offset_ns`` if it is still open then."""
        lane = self._lanes.get(offset_ns)
        if lane is None:
            lane = self._lanes.setdefault(offset_ns, deque())
        lane.append((start_ns, span_id))
        if start_ns + offset_ns < self.sleep_until:
            self.wake()

    def wake(self) -> None:
        if not self._started:
            self._start()
        with self._mutex:
            self._kick = True
        if self._signal.locked():
            try:
                self._signal.release()
            except RuntimeError:  # another thread released it first
                pass

    def shutdown(self, timeout_s: float = 2.0) -> None:
        self._stopped = True
        self.wake()
        deadline = time.monotonic() + timeout_s
        while self.thread_ident is not None and time.monotonic() < deadline:
            time.sleep(0.005)

    def pending(self) -> int:
        """Entries still queued (those of ended spans included until passed)."""
        return sum(len(lane) for lane in list(self._lanes.values())) + len(self._heap)

    # -- the watchdog thread -----------------------------------------------

    def _start(self) -> None:
        with self._mutex:
            if self._started or self._stopped:
                return
            self._started = True
        realthread.start_thread(self._run, "otel-slowstack-watchdog")

    def _run(self) -> None:
        self.thread_ident = realthread.get_ident()
        try:
            while not self._stopped:
                next_at = self._run_due(time.monotonic_ns())
                with self._mutex:
                    if self._kick:
                        self._kick = False
                        self._signal.acquire(False)  # consume the pending wake-up
                        continue
                    self.sleep_until = _FOREVER if next_at is None else next_at
                if next_at is None:
                    self._signal.acquire()
                else:
                    delay = (next_at - time.monotonic_ns()) / 1e9
                    if delay > 0:
                        self._signal.acquire(timeout=delay)
                self.wakeups += 1
                with self._mutex:
                    # Awake: any enqueue from now on kicks, so none is missed.
                    self.sleep_until = _FOREVER
                    self._kick = False
        except BaseException:  # never let the process see us die silently
            _logger.exception("otel-slowstack: the watchdog stopped")
        finally:
            self.thread_ident = None
            self._started = False

    def _run_due(self, now: int) -> Optional[int]:
        """Handle everything due at ``now``; return the next deadline."""
        next_at: Optional[int] = None
        resolve = self._resolve
        for offset, lane in list(self._lanes.items()):
            while lane:
                start_ns, span_id = lane[0]
                watched = resolve(span_id)
                if watched is None or watched.ended or watched.span_id != span_id:
                    lane.popleft()
                    continue
                due = start_ns + offset
                if due > now:
                    if next_at is None or due < next_at:
                        next_at = due
                    break
                lane.popleft()
                self._fire(watched, now)
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
            heapq.heappop(heap)
            self._fire(watched, now)
        return next_at

    def _fire(self, watched: Any, now: int) -> None:
        watched.fired = True
        try:
            self._on_due(watched, now)
        except Exception as exc:
            # Contained: the watchdog goes on with every other span. One
            # traceback per kind of failure, not one per sample.
            kind = (type(exc), str(exc)[:200])
            if kind not in self._failures and len(self._failures) < 100:
                self._failures.add(kind)
                _logger.exception("otel-slowstack: sampling failed; the watchdog carries on")
            else:
                _logger.debug("otel-slowstack: sampling failed again", exc_info=True)
        if not watched.ended:
            at = watched.next_due()
            if at is not None:
                heapq.heappush(self._heap, (at, next(self._seq), watched))
