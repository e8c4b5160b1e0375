"""``GreenletOwner``: a span served by a greenlet (gevent, eventlet): many per OS thread.

Made in ``on_start`` (``owners.task_or_greenlet_owner``). Switched out, its
stack is its saved frames (``gr_frame``); running, its thread's frames. An
interrupt while it is switched out is thrown in by its gevent hub, as
gevent's own ``Greenlet.kill`` does; snapshot spans of its span are ended in
that hub too (``hub``), where the SDK's gevent-patched locks belong.

``capture`` and ``interrupt`` run on the watchdog thread; ``_throw`` in the
hub; ``withdraw`` and ``release`` in the greenlet itself as its span ends.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Callable, Optional, Pattern

from otel_slowstack.capture.async_exception import send_parked, withdraw_from
from otel_slowstack.capture.entry import candidates_of, find_entry, frames_from_entry
from otel_slowstack.capture.frames import lines_of
from otel_slowstack.lifecycle.interrupt import outwards
from otel_slowstack.seams import greenlet_frame

#: Seconds between two tries to throw into a greenlet waiting in
#: instrumentation code, and how many (30 s, as for threads: ``interrupt.MAX_TRIES``).
RETRY_S = 0.02
LANDING_TRIES = 1500
_modules = sys.modules


class GreenletOwner:
    """A span served by a greenlet."""

    __slots__ = ("greenlet", "ident", "starter", "_candidates", "_sent")

    #: Only a task waits for its loop.
    loop_blocked_by: Optional[str] = None

    def __init__(self, greenlet: Any, ident: int, starter: Optional[FrameType]) -> None:
        self.greenlet = greenlet
        self.ident = ident
        self.starter = starter
        self._candidates: Optional[dict] = None
        self._sent = False  # an exception was sent to the thread while it ran

    @property
    def thread_ident(self) -> int:
        return self.ident

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        greenlet = self.greenlet  # each field read once: ``release`` may run meanwhile
        candidates = candidates_of(self)
        if greenlet is None or candidates is None or greenlet.dead:
            return None
        innermost = greenlet_frame(greenlet)  # set while it is switched out
        if innermost is None:  # running now: its frames are its thread's
            innermost = frames_by_thread.get(self.ident)
        frames = frames_from_entry(innermost, candidates)
        if frames is None:
            return None  # another greenlet runs, or this one has moved on
        return lines_of(frames, redact)

    def working_thread(self, frames_by_thread: dict) -> Optional[int]:
        """Its thread: a greenlet's work never leaves it."""
        return self.ident

    def scoped(self) -> bool:
        """A greenlet's span is its own code's: always delimited."""
        return True

    def interrupt(self, exc_type: type, safe: Optional[Callable] = None) -> Optional[bool]:
        """Raise ``exc_type`` in the greenlet, thread-safely.

        Running (hogging its thread), it gets it at its next bytecode, like a
        thread (``send_parked``). Switched out, the hub throws it in where it
        waits, as gevent's own ``Greenlet.kill`` does, unless it waits inside
        instrumentation code; then the hub tries again a little later.
        """
        greenlet = self.greenlet
        if greenlet is None or greenlet.dead:
            return False
        candidates = candidates_of(self) or {}
        if greenlet_frame(greenlet) is None:

            def safe_here(innermost: FrameType) -> bool:
                running = greenlet_frame(greenlet) is None and not greenlet.dead
                return running and (safe is None or safe(outwards(innermost), find_entry(innermost, candidates)))

            sent = send_parked(self.ident, exc_type, safe_here)
            self._sent = sent is True
            return sent
        hub = _hub_of(greenlet)
        if hub is None:
            return False
        hub.loop.run_callback_threadsafe(self._throw, exc_type, safe, 0)
        return True

    def _throw(self, exc_type: type, safe: Optional[Callable] = None, tries: int = 0) -> None:
        """In the hub: switch into the greenlet, raising ``exc_type`` there."""
        greenlet = self.greenlet
        if greenlet is None or greenlet.dead:
            return
        innermost = greenlet_frame(greenlet)
        if safe is not None and innermost is not None:
            entry = find_entry(innermost, self._candidates or {})
            if not safe(outwards(innermost), entry):
                hub = _hub_of(greenlet)
                if hub is not None and tries < LANDING_TRIES:
                    timer = hub.loop.timer(RETRY_S)
                    timer.start(self._throw, exc_type, safe, tries + 1)
                return
        greenlet.throw(exc_type())

    def withdraw(self) -> None:
        """In the greenlet: take back an exception sent to its thread and not yet raised."""
        if self._sent:
            self._sent = False
            withdraw_from(self.ident)

    def hub(self) -> Any:
        """The gevent hub the greenlet runs under, or None."""
        greenlet = self.greenlet
        return _hub_of(greenlet) if greenlet is not None else None

    def release(self) -> None:
        self.greenlet = self.starter = None
        self._candidates = None


def _hub_of(greenlet: Any) -> Any:
    hub_module = _modules.get("gevent.hub")
    if hub_module is None:
        return None
    parent = greenlet.parent
    for _ in range(8):
        if parent is None or isinstance(parent, hub_module.Hub):
            return parent
        parent = parent.parent
    return None
