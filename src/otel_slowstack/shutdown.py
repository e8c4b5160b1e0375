"""Final samples on the way down: the evidence leaves before the process does.

When the process is about to go with watched spans still open, each of them
gets a last sample (``slowstack.trigger`` ``signal`` or ``shutdown``), status
ERROR and its ``end()``, and only then are the exporters flushed, within a
bounded time. The moments covered:

- interpreter exit (``atexit``): spans still open on daemon threads;
- SIGABRT (gunicorn's worker abort on ``--timeout``, with SIGKILL about a
  second behind), SIGINT and SIGQUIT (quick shutdown), and SIGTERM when
  nothing else handles it (a plain process under Kubernetes or systemd).

SIGTERM that something else handles (gunicorn's worker, uvicorn) is a
graceful stop that lets requests finish: no span is ended early; those
already past their threshold get a fresh sample exported at once as a
``slowstack.snapshot`` span, so the evidence is out if the grace period runs
out. In every case the handler that was there before still runs, after ours;
a signal that had its default action gets it back (the process still dies
of SIGTERM, with the exit status that says so).

Handlers are chained, never replaced, and only from the main thread of a
process that Python runs (not inside uWSGI, whose C main loop would never
let a Python handler run). gunicorn sets its own in each worker after the
fork; ``gunicorn_hooks`` chains ours again at that point.

The work runs on a short-lived helper thread while the signal handler waits
for it, within a deadline: a signal can arrive while the interrupted thread
holds a lock that ending a span needs (a span's own, the export queue's), and
only another thread can wait for that lock without deadlocking. The
interrupted frame is handed over, so a request running in the main thread
(gunicorn's sync worker) is sampled where it was stuck, not in the handler.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import weakref
from types import FrameType
from typing import Any, Callable, Optional

from . import quiet, realthread
from .frames import current_frames

_logger = logging.getLogger("otel_slowstack")

#: How long a dying process waits for its spans to be ended (a few ms when
#: all goes well; longer means a lock it needs is held by the interrupted code).
END_WAIT_S = 0.3
#: Flush budget after SIGABRT: gunicorn's SIGKILL follows within about a
#: second, and its own abort handler should still get its turn before that.
ABORT_FLUSH_S = 0.5
#: Flush budget for every other way down.
FLUSH_S = 2.0
#: How long a graceful stop waits for its snapshots to be taken (not sent).
SNAPSHOT_WAIT_S = 0.5

_processors: "weakref.WeakSet[Any]" = weakref.WeakSet()
_hooked = False
_final_lock = realthread.allocate_lock()


def _signals() -> tuple:
    names = ("SIGABRT", "SIGINT", "SIGQUIT", "SIGTERM")
    return tuple(getattr(signal, n) for n in names if hasattr(signal, n))


def register(processor: Any) -> None:
    """Cover ``processor``'s spans on the way down; installs the hooks once per process."""
    global _hooked
    _processors.add(processor)
    if _hooked:
        return
    _hooked = True
    try:
        atexit.register(_at_exit)
        install_signal_handlers()
        from . import gunicorn_hooks

        gunicorn_hooks.install()
    except Exception:
        _logger.exception("otel-slowstack: could not install the exit hooks")


# -- signal handlers ----------------------------------------------------------


class ChainedHandler:
    """Our work first, then whatever handled the signal before."""

    __slots__ = ("signum", "previous")

    def __init__(self, signum: int, previous: Any) -> None:
        self.signum = signum
        self.previous = previous

    @property
    def graceful(self) -> bool:
        """SIGTERM that someone else handles: they mean to let requests finish."""
        return self.signum == getattr(signal, "SIGTERM", None) and callable(self.previous)

    def __call__(self, signum: int, frame: Optional[FrameType]) -> Any:
        try:
            on_signal(signum, frame, self.graceful)
        except Exception:
            _logger.exception("otel-slowstack: handling signal %s failed", signum)
        previous = self.previous
        if callable(previous):
            return previous(signum, frame)
        if previous == signal.SIG_DFL:
            # The default action: terminate (and dump core where that is the default).
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return None


def install_signal_handlers() -> int:
    """Chain our handler in front of the current one for each signal; returns how many.

    Ignored signals stay ignored, handlers set outside Python are left alone,
    and a handler already chained is not chained twice.
    """
    if threading.current_thread() is not threading.main_thread() or embedded():
        return 0
    chained = 0
    for signum in _signals():
        try:
            previous = signal.getsignal(signum)
            if previous is None or previous == signal.SIG_IGN or isinstance(previous, ChainedHandler):
                continue
            signal.signal(signum, ChainedHandler(signum, previous))
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


def on_signal(signum: int, frame: Optional[FrameType], graceful: bool) -> None:
    if not _anything_open():
        return
    interrupted = (realthread.get_ident(), frame) if frame is not None else None
    if graceful:
        _run_bounded(lambda reached: _snapshot_all("signal", interrupted, reached), SNAPSHOT_WAIT_S)
        return
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    flush_s = ABORT_FLUSH_S if signum == getattr(signal, "SIGABRT", None) else FLUSH_S
    final("signal", f"{name} received while the span was still open", interrupted, flush_s)


def _at_exit() -> None:
    if _anything_open():
        final("shutdown", "the process exited while the span was still open", None, FLUSH_S)


# -- the work ---------------------------------------------------------------


def final(trigger: str, description: str, interrupted: Optional[tuple], flush_s: float) -> bool:
    """End every open watched span with a final sample, then flush; bounded in time."""
    quiet.silence_everywhere()  # the requests still unwinding write to the spans we ended
    return _run_bounded(
        lambda reached: _end_all(trigger, description, interrupted, flush_s), END_WAIT_S + flush_s
    )


def _frames(interrupted: Optional[tuple]) -> dict:
    """Every thread's innermost frame; the signalled thread's as it was when interrupted."""
    frames = current_frames()
    if interrupted is not None:
        ident, frame = interrupted
        frames[ident] = frame
    return frames


def _end_all(trigger: str, description: str, interrupted: Optional[tuple], flush_s: float) -> None:
    if not _final_lock.acquire(timeout=END_WAIT_S):
        return
    try:
        frames = _frames(interrupted)
        flush: list = []
        for processor in list(_processors):
            flush.extend(processor.end_open_spans(trigger, description, frames))
        del frames
        _flush(flush, flush_s)  # only once every span has ended
    finally:
        _final_lock.release()


def _snapshot_all(trigger: str, interrupted: Optional[tuple], reached: Callable[[], None]) -> None:
    frames = _frames(interrupted)
    flush: list = []
    for processor in list(_processors):
        flush.extend(processor.snapshot_open(trigger, frames))
    del frames
    reached()  # samples are taken: the interrupted thread may go on
    _flush(flush, FLUSH_S)


def _flush(targets: list, timeout_s: float) -> None:
    seen: list = []
    for target in targets:
        if any(target is s for s in seen):
            continue
        seen.append(target)
        try:
            target.force_flush(int(timeout_s * 1000))
        except Exception:
            _logger.exception("otel-slowstack: flushing on the way down failed")


def _anything_open() -> bool:
    return any(p.open_roots() for p in list(_processors))


def _run_bounded(work: Callable[[Callable[[], None]], None], timeout_s: float) -> bool:
    """Run ``work(reached)`` on a helper thread; wait until it calls ``reached`` or
    returns, at most ``timeout_s``. True if it got there in time."""
    done = realthread.allocate_lock()
    done.acquire()

    def reached() -> None:
        try:
            done.release()
        except RuntimeError:  # already released
            pass

    def run() -> None:
        try:
            work(reached)
        except Exception:
            _logger.exception("otel-slowstack: the way-down work failed")
        finally:
            reached()

    try:
        realthread.start_thread(run, "otel-slowstack-final")
    except RuntimeError:  # interpreter shutting down (3.12+): no new threads, do it here
        run()
        return True
    return done.acquire(timeout=timeout_s)
