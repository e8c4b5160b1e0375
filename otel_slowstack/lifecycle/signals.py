"""Signal handlers chained in front of the process's own, and kept in front where servers reset them.

What a signal means for the open spans (``shutdown.on_signal``) is decided
per signal: SIGABRT (gunicorn's worker abort on ``--timeout``), SIGQUIT, and
SIGINT where something other than Python's default handler takes it mean
"die now"; SIGTERM means "die now" when nothing else handles it, and "stop
once requests are done" (graceful) when something does; SIGINT left to
Python's own handler is graceful too (a ``KeyboardInterrupt`` the application
may catch). Servers that know better say so (a Celery child's SIGTERM is its
death: ``celery_hooks``).

Handlers are chained, never replaced: ours runs first, then whatever was
there before; a signal that had its default action gets it back (the process
still dies of SIGTERM, with the exit status that says so). Only from the main
thread of a process that Python runs: not inside uWSGI, whose C main loop
would never let a Python handler run (``embedded``).

Servers that set their handlers after we did:

- gunicorn: each worker resets every signal and installs its own right after
  the fork (``Worker.init_signals``), so ours are chained again each time it
  has run. gunicorn asks that SIGTERM not interrupt system calls;
  re-installing a handler from Python would lose that, so it is asked for
  again. This holds whether we were loaded in the master (``--preload``, the
  instrumentor) or in the worker.
- uvicorn does not chain: while it serves, SIGINT and SIGTERM go to
  ``Server.handle_exit`` alone, and both mean a graceful stop (a second
  SIGINT forces the exit). So ``handle_exit`` is wrapped to take a snapshot
  of every span past its threshold first; nothing is ended early. This covers
  plain ``uvicorn`` and gunicorn's ``UvicornWorker`` alike. When uvicorn is
  done it raises the signal again, and our chained handler, in force once
  more, ends whatever is still open.
- Celery and billiard: ``celery_hooks``.

This module does nothing until ``process_hooks.install`` calls ``install``
with the function to run on a signal (``shutdown.on_signal``); ``uninstall``
puts back every handler that is still ours and makes the others (chained
under a server's since) pass straight through.

Which thread: handlers run on the main thread, between bytecodes; install and
uninstall change handlers from the main thread only (Python allows no other).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional

from otel_slowstack import failures, seams
from otel_slowstack.lifecycle.import_hooks import patch_when_imported as _patch_when_imported

_logger = logging.getLogger("otel_slowstack")

#: ``on_signal(signum, frame, graceful)``, set by ``install``; None: not installed.
_on_signal: Optional[Callable[[int, Optional[FrameType], bool], None]] = None
#: Every handler we chained, for ``uninstall``.
_chained: list = []


def _signals() -> tuple:
    names = ("SIGABRT", "SIGINT", "SIGQUIT", "SIGTERM")
    return tuple(getattr(signal, n) for n in names if hasattr(signal, n))


def install(on_signal: Callable[[int, Optional[FrameType], bool], None]) -> None:
    """Chain our handlers now, and again wherever gunicorn or uvicorn resets them."""
    global _on_signal
    _on_signal = on_signal
    chain_in_front()
    _patch_when_imported(seams.GUNICORN_WORKER_INIT_SIGNALS, _after_init_signals)
    _patch_when_imported(seams.UVICORN_HANDLE_EXIT, _handle_exit)


def uninstall() -> None:
    """Put back the handlers we chained in front of, where ours is still in force."""
    global _on_signal
    _on_signal = None
    main = threading.current_thread() is threading.main_thread()
    for handler in _chained:
        handler.active = False  # chained under another since, or not ours to reset: pass through
        if not main:
            continue
        try:
            if signal.getsignal(handler.signum) is handler:
                signal.signal(handler.signum, handler.previous)
        except (OSError, RuntimeError, ValueError, TypeError):
            continue
    _chained.clear()


class ChainedHandler:
    """Our work first, then whatever handled the signal before.

    ``graceful``: the signal asks the process to stop once requests are done
    (snapshots only), rather than to die now (final samples, spans ended).
    """

    __slots__ = ("signum", "previous", "graceful", "active")

    def __init__(self, signum: int, previous: Any, graceful: Optional[bool] = None) -> None:
        self.signum = signum
        self.previous = previous
        self.graceful = _graceful_by_default(signum, previous) if graceful is None else graceful
        self.active = True

    def __call__(self, signum: int, frame: Optional[FrameType]) -> Any:
        on_signal = _on_signal
        if self.active and on_signal is not None:
            try:
                on_signal(signum, frame, self.graceful)
            except Exception:
                failures.report_current("handling signal %s failed" % (signum,))
        previous = self.previous
        if callable(previous):
            return previous(signum, frame)
        if previous == signal.SIG_DFL:
            # The default action: terminate (and dump core where that is the default).
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return None


def _graceful_by_default(signum: int, previous: Any) -> bool:
    """SIGTERM that someone else handles: they mean to let requests finish.
    SIGINT left to Python: a ``KeyboardInterrupt`` the application may catch."""
    if signum == getattr(signal, "SIGTERM", None):
        return callable(previous)
    if signum == getattr(signal, "SIGINT", None):
        return previous is signal.default_int_handler
    return False


def chain_in_front(graceful: Optional[dict] = None) -> int:
    """Chain our handler in front of the current one for each signal; returns how many.

    ``graceful`` maps signal numbers to whether they are graceful there,
    where the server's meaning differs from the default. Ignored signals stay
    ignored, handlers set outside Python are left alone, and a handler
    already chained is not chained twice (its meaning is updated). Nothing
    happens unless installed.
    """
    if _on_signal is None or threading.current_thread() is not threading.main_thread() or embedded():
        return 0
    graceful = graceful or {}
    chained = 0
    for signum in _signals():
        try:
            previous = signal.getsignal(signum)
            if isinstance(previous, ChainedHandler) and previous.active:
                if signum in graceful:
                    previous.graceful = graceful[signum]
                continue
            if previous is None or previous == signal.SIG_IGN:
                continue
            handler = ChainedHandler(signum, previous, graceful.get(signum))
            signal.signal(signum, handler)
            _chained.append(handler)
            chained += 1
        except (OSError, RuntimeError, ValueError):
            continue
    return chained


def embedded() -> bool:
    """Python embedded in a server whose main loop is C code (uWSGI, for one).

    A Python-level handler runs only when the main thread runs Python, so
    there it would never run, and a signal whose default action used to end
    the process would end it no more. Such servers end workers with SIGKILL
    anyway; the snapshot spans are what survives it.
    """
    if getattr(sys, "frozen", False):
        return False  # a bundled application: Python runs it
    name = os.path.basename(sys.executable or "").lower()
    return not name.startswith(("python", "pypy"))


# -- gunicorn and uvicorn ------------------------------------------------------


def _after_init_signals(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        if chain_in_front() and hasattr(signal, "siginterrupt"):
            signal.siginterrupt(signal.SIGTERM, False)
    except Exception:
        failures.report_current("could not chain the signal handlers in the gunicorn worker")
    return result


def _handle_exit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        signum = args[0] if args else kwargs.get("sig")
        frame = args[1] if len(args) > 1 else kwargs.get("frame")
        on_signal = _on_signal
        if isinstance(signum, int) and on_signal is not None:
            on_signal(signum, frame, True)
    except Exception:
        failures.report_current("snapshotting on uvicorn's stop failed")
    return wrapped(*args, **kwargs)
