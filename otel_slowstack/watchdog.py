"""One thread per process that sleeps until the next watched span is due.

Every processor has a ``Schedule`` (``schedule.py``) of its own; the process
has one ``Watchdog`` thread serving all of them, however many tracer
providers the application makes. It holds the schedules weakly, as the SDK's
batch processor holds its owner: a processor nobody references any more is
freed with its spans, and the thread never keeps it alive.

Application threads call ``wake()`` only when a new deadline is earlier than
the one the thread sleeps towards. With nothing in flight the thread waits
without a timeout: zero wake-ups. It is started lazily, ends when no schedule
is left, and is rebuilt in a forked child (gunicorn workers, with or without
``--preload``), like the SDK's batch processor: that skeleton is
``lifecycle.service_thread.ServiceThread``, shared with the snapshot flusher.

Never harming the host comes first, so the thread keeps to a CPU budget, a
token bucket: it earns ``CPU_SHARE`` of each second of wall time in CPU time
it may spend, and saves at most ``BURST_NS`` of it. A pass handles what is
due, oldest first, while it has budget left; then the thread rests until it
has earned some again. A few slow requests are sampled on time; however many
are slow at once (thousands of stuck threads), the watchdog takes at most
``CPU_SHARE`` of one core, and of the GIL, over time: samples then come later
and sparser, never the application slower. Every span due in one pass shares
one read of all threads' frames (``Batch``), which costs in proportion to the
thread count.
"""

from __future__ import annotations

import time
import weakref
from typing import Optional

from otel_slowstack.capture.frames import current_frames
from otel_slowstack.lifecycle import realthread
from otel_slowstack.lifecycle.service_thread import ServiceThread
from otel_slowstack.schedule import Schedule

#: The share of one core the watchdog may use, over time (2 %).
CPU_SHARE = 0.02
#: CPU time it may save up for a burst of samples due together.
BURST_NS = 20_000_000
#: Budget a pass starts with at least, once the thread had to rest: passes
#: stay few and large (each reads every thread's frames once).
MIN_PASS_NS = 2_000_000
_FOREVER = float("inf")


class Batch:
    """What the spans due in one pass share: one read of every thread's frames."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames: Optional[dict] = None

    def frames(self) -> dict:
        if self._frames is None:
            self._frames = current_frames()
        return self._frames


class Watchdog:
    """The process's watchdog thread; use ``watchdog()`` to get it."""

    def __init__(self) -> None:
        self.wakeups = 0
        #: CPU time the thread has spent in passes (its own clock), for benchmarks.
        self.busy_ns = 0
        self._thread = ServiceThread("otel-slowstack-watchdog", self._run, after_fork=self._after_fork)
        self._reset()

    def _reset(self) -> None:
        """Fresh state; in a forked child the parent's thread does not exist."""
        self._schedules: "weakref.WeakSet[Schedule]" = weakref.WeakSet()
        self._mutex = realthread.allocate_lock()
        self._kick = False
        self.sleep_until: float = _FOREVER

    def _after_fork(self) -> None:
        """In a forked child, after the thread's own reset: keep serving the schedules."""
        schedules = list(self._schedules)
        self._reset()
        for schedule in schedules:
            schedule.reset()
            self._schedules.add(schedule)

    @property
    def thread_ident(self) -> Optional[int]:
        """The watchdog thread's identifier while it runs (not sampled, never interrupted)."""
        return self._thread.ident

    # -- called on application threads -----------------------------------

    def add(self, schedule: Schedule) -> None:
        self._schedules.add(schedule)

    def remove(self, schedule: Schedule) -> None:
        """Stop serving ``schedule``; the thread ends when none is left."""
        self._schedules.discard(schedule)
        if self._thread.running:
            self.wake()

    def wake(self) -> None:
        if not self._thread.running:
            if not self._schedules:
                return  # nothing to serve: no thread
        with self._mutex:
            self._kick = True
        self._thread.wake()

    def join(self, timeout_s: float) -> None:
        """Wait for the thread to end (after the last ``remove``), at most ``timeout_s``."""
        self._thread.join(timeout_s)

    # -- the watchdog thread -----------------------------------------------

    def _run(self) -> None:
        thread = self._thread
        budget = float(BURST_NS)  # CPU ns it may spend now
        earned_at = time.monotonic_ns()
        resting = False
        while True:
            schedules = list(self._schedules)
            if not schedules:
                if thread.end_if(lambda: not self._schedules):  # nothing left to serve
                    return
                continue
            now = time.monotonic_ns()
            budget = min(float(BURST_NS), budget + (now - earned_at) * CPU_SHARE)
            earned_at = now
            next_at: Optional[int]
            if resting and budget < MIN_PASS_NS:  # wake when enough is earned again
                next_at = now + int((MIN_PASS_NS - budget) / CPU_SHARE) + 1
                sleep_until: float = 0  # no new deadline can shorten a rest: no kicks
            else:
                next_at, spent = self._pass(schedules, budget)
                self.busy_ns += spent
                budget -= spent
                resting = budget <= 0
                sleep_until = _FOREVER if next_at is None else next_at
                if next_at is not None and resting:
                    next_at = max(next_at, time.monotonic_ns() + int((MIN_PASS_NS - budget) / CPU_SHARE) + 1)
                    sleep_until = 0
            del schedules  # never hold a processor while asleep
            with self._mutex:
                if self._kick:
                    self._kick = False
                    thread.wakeup.clear()  # consume the pending wake-up
                    continue
                self.sleep_until = sleep_until
            if next_at is None:
                thread.wait()
            else:
                delay = (next_at - time.monotonic_ns()) / 1e9
                if delay > 0:
                    thread.wait(delay)
            self.wakeups += 1
            with self._mutex:
                # Awake: any enqueue from now on kicks, so none is missed.
                self.sleep_until = _FOREVER
                self._kick = False

    def _pass(self, schedules: list, budget: float) -> tuple:
        """Handle what is due in every schedule while ``budget`` (CPU ns) lasts;
        return when to wake next (None: never, until woken) and the CPU time spent."""
        cpu_start = time.thread_time_ns()
        limit = cpu_start + budget
        now = time.monotonic_ns()
        batch = Batch()

        def over_budget() -> bool:
            return time.thread_time_ns() > limit

        next_at: Optional[int] = None
        for schedule in schedules:
            at = schedule.run_due(now, batch, over_budget)
            if at is not None and (next_at is None or at < next_at):
                next_at = at
        del batch
        return next_at, time.thread_time_ns() - cpu_start


_watchdog = Watchdog()


def watchdog() -> Watchdog:
    """The process's one watchdog."""
    return _watchdog
