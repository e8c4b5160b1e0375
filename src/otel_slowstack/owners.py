"""Who runs a watched span's code, and how to read (or interrupt) it from outside.

An owner is recorded in ``on_start`` for the price of a few attribute reads
(``current_owner``), and asked for its stack only when a sample is due. Every
owner answers the same three questions:

- ``thread_ident``: the OS thread it runs on (``thread.id``, the CPU clock);
- ``capture(frames_by_thread, redact)``: its frames from the span's entry
  inwards as plain ``FrameLine`` data, or None when it no longer serves the
  span;
- ``interrupt(exc_type)``: make ``exc_type`` raise inside it.
"""

from __future__ import annotations

import ctypes
import threading
from types import FrameType
from typing import Any, Optional, Pattern

from .entry import entry_candidates, find_entry
from .frames import frame_lines


class ThreadOwner:
    """A span served by one OS thread from start to end (WSGI, Celery, ...)."""

    __slots__ = ("ident", "starter", "_candidates")

    def __init__(self, ident: int, starter: Optional[FrameType]) -> None:
        self.ident = ident
        self.starter = starter
        self._candidates: Optional[dict] = None

    @property
    def thread_ident(self) -> int:
        return self.ident

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        innermost = frames_by_thread.get(self.ident)
        if innermost is None:
            return None
        if self._candidates is None:
            self._candidates = entry_candidates(self.starter)
        entry = find_entry(innermost, self._candidates)
        if entry is None:
            return None  # the thread has left the span's code: moved on
        return frame_lines(innermost, entry, redact)

    def interrupt(self, exc_type: type) -> bool:
        """Raise ``exc_type`` in the thread at its next bytecode.

        A thread blocked inside a C call (a socket read, ``time.sleep``)
        sees it when that call returns.
        """
        done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self.ident), ctypes.py_object(exc_type)
        )
        return done == 1

    def release(self) -> None:
        """Drop frame references once the span has ended."""
        self.starter = None
        self._candidates = None


def current_owner(starter: Optional[FrameType]) -> Any:
    """The owner of a span starting now, on the calling thread."""
    return ThreadOwner(threading.get_ident(), starter)
