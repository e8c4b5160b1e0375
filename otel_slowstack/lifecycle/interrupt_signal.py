"""Interrupting the main thread with a signal, so that a blocking call returns.

``PyThreadState_SetAsyncExc`` is seen only between bytecodes: a request stuck
in ``time.sleep``, a socket read or a database driver's ``poll`` would see it
when the call returns, that is too late. A signal does better, on the main
thread only: the system call fails with ``EINTR``, CPython runs the Python
handler there (PEP 475), and an exception raised by the handler comes out of
the blocked call, in the code that made it. gunicorn's sync worker and gevent-
less servers run each request on the main thread, so this covers the common
case; other threads keep ``SetAsyncExc`` (see ``interrupt.py``).

The signal is ``SIGRTMIN + 3`` (``SIGNAL``) unless
``OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL`` names another real-time signal
(``configure``): real-time signals are not used by gunicorn, Celery or the
standard library. The handler is installed lazily, by
the first watched span the main thread starts with ``INTERRUPT_AFTER`` set
(``install``), never from another thread and never inside an embedded
interpreter (uWSGI) whose C main loop would never run it. A handler that was
there before is chained: it runs whenever the signal is not one of ours, and
is put back by ``process_hooks.uninstall`` (``uninstall``).

Who touches what: the watchdog thread arms a request and sends the signal
(``request``), again every retry until the handler has raised; the handler,
on the main thread, raises only if the frame it interrupted is a safe landing
point (``interrupt.landing_is_safe``) for a span still open, and otherwise
returns, leaving the blocked call to resume; the main thread disarms in
``on_end`` (``cancel``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any, Callable, Optional

from otel_slowstack.lifecycle import realthread
from otel_slowstack.lifecycle.signals import embedded

_logger = logging.getLogger("otel_slowstack")

#: The signal sent to the main thread to interrupt it.
SIGNAL: Optional[int] = signal.SIGRTMIN + 3 if hasattr(signal, "SIGRTMIN") and hasattr(signal, "pthread_kill") else None


class _Request:
    """One interrupt in flight for one owner; ``raised`` once the handler raised it."""

    __slots__ = ("owner", "exc_type", "safe", "raised", "unanswered")

    def __init__(self, owner: Any, exc_type: type, safe: Callable[[FrameType], bool]) -> None:
        self.owner = owner
        self.exc_type = exc_type
        self.safe = safe
        self.raised = False
        #: A signal was sent and the handler has not run since: CPython keeps
        #: it pending, so it is not sent again. (Some C waits, psycopg's
        #: ``wait_c`` for one, run handlers only once their ``poll`` times out:
        #: a signal every retry would restart that ``poll`` for ever.)
        self.unanswered = False


_main_ident: Optional[int] = None  # the thread the handler was installed on
_previous: Any = None
_pending: Optional[_Request] = None


def configure(signum: Optional[int]) -> None:
    """The signal to use (``off``: None), as set; only until the handler is installed."""
    global SIGNAL
    if _main_ident is None:
        SIGNAL = signum


def install() -> bool:
    """On the main thread: install the handler (once). True if it is installed."""
    global _main_ident, _previous
    if SIGNAL is None:
        return False
    ident = realthread.get_ident()
    if _main_ident == ident:
        return True
    if _main_ident is not None or threading.main_thread().ident != ident or embedded():
        return False  # the hot path of every other thread: two comparisons
    try:
        previous = signal.getsignal(SIGNAL)
        if previous is not _handler:
            signal.signal(SIGNAL, _handler)
            _previous = previous
    except (ValueError, OSError, RuntimeError):  # not the main thread after all
        return False
    _main_ident = ident
    return True


def uninstall() -> None:
    """Put back the handler that was there before ours (``process_hooks.uninstall``);
    on the main thread only. A span started on the main thread later, with
    ``INTERRUPT_AFTER`` set, installs it again."""
    global _main_ident, _previous, _pending
    if _main_ident is None or SIGNAL is None:
        return
    if threading.main_thread().ident != realthread.get_ident():
        return
    try:
        # A previous handler set outside Python (None) cannot be put back: ours
        # stays, and passes stray signals on as before.
        if _previous is not None and signal.getsignal(SIGNAL) is _handler:
            signal.signal(SIGNAL, _previous)
            _previous = None
    except (ValueError, OSError, RuntimeError, TypeError):
        return
    _main_ident = None
    _pending = None


def serves(ident: int) -> bool:
    """Whether ``ident`` is the thread our handler runs on."""
    return ident == _main_ident


def request(owner: Any, exc_type: type, safe: Callable[[FrameType], bool]) -> Optional[bool]:
    """On the watchdog thread: ask the main thread to raise ``exc_type`` at a safe point.

    True once the handler has raised it; None while it has not (the watchdog
    tries again: the signal may have landed in instrumentation code).
    """
    global _pending
    pending = _pending
    if pending is not None and pending.owner is owner:
        if pending.raised:
            return True
        if pending.unanswered:
            return None
    else:
        _pending = pending = _Request(owner, exc_type, safe)
    ident = _main_ident
    if ident is None or SIGNAL is None:
        return False
    pending.unanswered = True
    try:
        signal.pthread_kill(ident, SIGNAL)
    except (OSError, ValueError):  # the thread is gone
        return False
    return None


def cancel(owner: Any) -> None:
    """Forget a request for ``owner`` (its span ended)."""
    global _pending
    pending = _pending
    if pending is not None and pending.owner is owner:
        _pending = None


def _handler(signum: int, frame: Optional[FrameType]) -> Any:
    pending = _pending
    if pending is None or pending.raised:
        return _chain(signum, frame)
    pending.unanswered = False
    if frame is None or not pending.safe(frame):
        return None  # not in the request's own code now: the watchdog sends it again
    pending.raised = True
    raise pending.exc_type()


def _chain(signum: int, frame: Optional[FrameType]) -> Any:
    previous = _previous
    if callable(previous):
        return previous(signum, frame)
    return None  # the default action would end the process: not for a stray signal


def _after_fork() -> None:
    """A forked child's main thread installs again (the handler itself survives fork)."""
    global _main_ident, _pending
    _main_ident = None
    _pending = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
