"""``ThreadOwner``: a span served by one OS thread from start to end (WSGI, Celery, ...).

Made lazily (``Watched.owner``) the first time the watchdog needs it. Its
stack is its thread's, from the span's entry inwards; while the thread waits
on a ``concurrent.futures`` future, followed by the frames of the pool
thread working on it (``pool_threads``).

A stuck thread sampled again is the common case of a slow request: while
the same frame object is still the thread's innermost, at the same
instruction, nothing outside it can have moved (every caller is suspended in
the call that leads to it), so the previous lines are the answer, for the
price of two reads. ``capture`` runs on the watchdog thread; ``release`` and
``withdraw`` on the request's thread as the span ends, which is why each
field is read once into a local.
"""

from __future__ import annotations

import inspect
from types import FrameType
from typing import Any, Callable, Optional, Pattern

from otel_slowstack.capture.async_exception import send_parked, withdraw_from
from otel_slowstack.capture.entry import candidates_of, find_entry, frames_from_entry
from otel_slowstack.capture.frames import frames_between, lines_of
from otel_slowstack.capture.pool_threads import futures_waited_on, worker_of
from otel_slowstack.lifecycle import interrupt_signal
from otel_slowstack.lifecycle.interrupt import outwards, scoped, wraps_a_call
from otel_slowstack.lifecycle.realthread import get_ident
from otel_slowstack.seams import current_frames

#: Frames that may be suspended and resumed by another caller (generators,
#: coroutines): the same innermost object no longer vouches for its callers.
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR


class ThreadOwner:
    """A span served by one OS thread from start to end."""

    __slots__ = ("ident", "starter", "start_lasti", "_candidates", "thread_ident", "_last")

    #: Only a task waits for its loop.
    loop_blocked_by: Optional[str] = None

    def __init__(self, ident: int, starter: Optional[FrameType], start_lasti: Optional[int] = None) -> None:
        self.ident = ident
        self.starter = starter
        # Where the starter stood when the span started (``scoped``): given by
        # a caller that made the owner later, read now otherwise.
        if start_lasti is None:
            start_lasti = starter.f_lasti if starter is not None else -1
        self.start_lasti = start_lasti
        self._candidates: Optional[dict] = None
        #: The thread whose frames end the last capture: a pool thread while
        #: this one waits on a ``concurrent.futures`` future it works on.
        self.thread_ident = ident
        #: (innermost frame, its offset, lines) of the last capture made of
        #: this thread's own frames alone, without locals.
        self._last: Optional[tuple] = None

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        candidates = candidates_of(self)  # read once: ``release`` may run meanwhile
        innermost = frames_by_thread.get(self.ident)
        if innermost is None or candidates is None:
            return None
        last = self._last
        if last is not None and last[0] is innermost and innermost.f_lasti == last[1] and redact is None:
            self.thread_ident = self.ident  # stuck where it was (see the module docstring)
            return list(last[2])
        frames = frames_from_entry(innermost, candidates)
        if frames is None:
            return None  # the thread has left the span's code: moved on
        ident = self.ident
        waited = futures_waited_on(innermost)
        worker = worker_of(waited, frames_by_thread, (ident, get_ident()))
        if worker is not None:  # it waits on a pool thread: show what that thread does
            ident, holder = worker
            frames += frames_between(frames_by_thread.get(ident), holder) or ()
        lines = lines_of(frames, redact)
        self.thread_ident = ident
        if redact is None and not waited and not innermost.f_code.co_flags & _RESUMABLE:
            self._last = (innermost, innermost.f_lasti, lines[:])
        else:
            self._last = None
        return lines

    def working_thread(self, frames_by_thread: dict) -> Optional[int]:
        """Its own thread, unless it waits on a future a pool thread works on."""
        if not futures_waited_on(frames_by_thread.get(self.ident)):
            return self.thread_ident
        if self.capture(frames_by_thread, None) is None:
            return None
        return self.thread_ident

    def scoped(self) -> bool:
        """Whether a ``with`` block (or an instrumentation) delimits the span on this thread.

        A function decorated with ``@tracer.start_as_current_span(...)`` is
        called from its starter through OpenTelemetry's wrapper, whose ``with``
        is still on the stack while the function runs.
        """
        starter = self.starter
        if scoped(starter, self.start_lasti):
            return True
        frame = current_frames().get(self.ident)
        while frame is not None and starter is not None:
            caller = frame.f_back
            if caller is starter:
                return wraps_a_call(frame)
            frame = caller
        return False

    def interrupt(self, exc_type: type, safe: Optional[Callable] = None) -> Optional[bool]:
        """Raise ``exc_type`` in the thread, where ``safe(frames, entry)`` allows.

        The main thread gets a signal (``interrupt_signal.py``): a blocking
        call returns at once, and the handler raises only at a safe point.
        Another thread gets ``PyThreadState_SetAsyncExc``, sent only while it
        is parked at a safe point (``send_parked``); blocked inside a C call
        (a socket read, ``time.sleep``) it sees it when that call returns.
        True: sent; None: not at a safe point now, try again; False: gone.
        Without ``safe``, sent wherever the thread is, by ``send_parked`` too.
        """
        if safe is None:
            return send_parked(self.ident, exc_type, _anywhere)
        candidates = candidates_of(self)  # read once: ``release`` may run meanwhile
        if candidates is None:
            return False

        def safe_here(innermost: FrameType) -> bool:
            return safe(outwards(innermost), find_entry(innermost, candidates))

        if interrupt_signal.serves(self.ident):
            return interrupt_signal.request(self, exc_type, safe_here)
        return send_parked(self.ident, exc_type, safe_here)

    def withdraw(self) -> None:
        """Take back an exception sent to the thread and not yet raised (a no-op if none)."""
        if interrupt_signal.serves(self.ident):
            interrupt_signal.cancel(self)
        withdraw_from(self.ident)

    def hub(self) -> Any:
        """Not a greenlet: no gevent hub."""
        return None

    def release(self) -> None:
        """Drop frame references once the span has ended."""
        self.starter = None
        self._candidates = None
        self._last = None


def _anywhere(innermost: FrameType) -> bool:
    return True
