"""Final samples on the way down: the evidence leaves before the process does.

When the process is about to go with watched spans still open, each of them
gets a last sample (``slowstack.trigger`` ``signal`` or ``shutdown``). Those
samples leave first, at once, as ``slowstack.snapshot`` spans in one small
export of their own (``snapshot.export_at_once``): a Celery task past its
hard time limit gets SIGKILL 0.1 s after SIGTERM, far too soon for a batch
flush. Then each span gets status ERROR and its ``end()``, and only then are
the exporters flushed, within a bounded time. The moments covered:

- interpreter exit (``atexit``): spans still open on daemon threads;
- SIGABRT (gunicorn's worker abort on ``--timeout``, with SIGKILL about a
  second behind), SIGQUIT (quick or cold shutdown), SIGINT where something
  other than Python's default handler takes it (gunicorn's quick shutdown),
  and SIGTERM when nothing else handles it (a plain process under Kubernetes
  or systemd) or when it means "die now" (a Celery prefork child: its hard
  time limit, or ``kill -TERM``).

A stop that lets requests finish ends nothing early: SIGTERM that something
else handles (gunicorn's worker, Celery's warm shutdown), SIGTERM and SIGINT
under uvicorn (``uvicorn_hooks``), and SIGINT left to Python's own handler,
whose ``KeyboardInterrupt`` the application may catch and carry on. Spans
already past their threshold get a fresh sample exported at once as a
``slowstack.snapshot`` span, so the evidence is out if the grace period runs
out; if the process does go, the exit hook ends what is still open, saying
which signal came first. In every case the handler that was there before
still runs, after ours; a signal that had its default action gets it back
(the process still dies of SIGTERM, with the exit status that says so).

Handlers are chained, never replaced, and only from the main thread of a
process that Python runs (not inside uWSGI, whose C main loop would never
let a Python handler run). Servers that set their own after we did get ours
chained again: gunicorn's workers (``gunicorn_hooks``), Celery's worker and
its prefork children, whose handlers billiard resets (``celery_hooks``).
Processors shut down are forgotten: their spans are not ours to end.

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

from otel_slowstack import failures, snapshot
from otel_slowstack.conventions import TRIGGER_SHUTDOWN, TRIGGER_SIGNAL
from otel_slowstack.lifecycle import quiet, realthread
from otel_slowstack.capture.frames import current_frames

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
#: How long the final samples' own export may hold up the rest of the way
#: down (ending spans, the big flush); normally a few milliseconds.
FINAL_EXPORT_S = 0.25

_processors: "weakref.WeakSet[Any]" = weakref.WeakSet()
_hooked = False
_final_lock = realthread.allocate_lock()
#: The graceful signal that came first, for the exit hook to say so.
_signalled: Optional[str] = None


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
        from otel_slowstack.lifecycle import celery_hooks, gunicorn_hooks, uvicorn_hooks

        gunicorn_hooks.install()
        uvicorn_hooks.install()
        celery_hooks.install()
    except Exception:
        failures.report_current("could not install the exit hooks")


def unregister(processor: Any) -> None:
    """A processor shut down: its provider has stopped exporting, leave its spans be."""
    _processors.discard(processor)


def _live() -> list:
    return [p for p in list(_processors) if not getattr(p, "_shut_down", False)]


# -- signal handlers ----------------------------------------------------------


class ChainedHandler:
    """Our work first, then whatever handled the signal before.

    ``graceful``: the signal asks the process to stop once requests are done
    (snapshots only), rather than to die now (final samples, spans ended).
    """

    __slots__ = ("signum", "previous", "graceful")

    def __init__(self, signum: int, previous: Any, graceful: Optional[bool] = None) -> None:
        self.signum = signum
        self.previous = previous
        self.graceful = _graceful_by_default(signum, previous) if graceful is None else graceful

    def __call__(self, signum: int, frame: Optional[FrameType]) -> Any:
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


def install_signal_handlers(graceful: Optional[dict] = None) -> int:
    """Chain our handler in front of the current one for each signal; returns how many.

    ``graceful`` maps signal numbers to whether they are graceful there,
    where the server's meaning differs from the default (a Celery child's
    SIGTERM is its death). Ignored signals stay ignored, handlers set outside
    Python are left alone, and a handler already chained is not chained
    twice (its meaning is updated).
    """
    if threading.current_thread() is not threading.main_thread() or embedded():
        return 0
    graceful = graceful or {}
    chained = 0
    for signum in _signals():
        try:
            previous = signal.getsignal(signum)
            if isinstance(previous, ChainedHandler):
                if signum in graceful:
                    previous.graceful = graceful[signum]
                continue
            if previous is None or previous == signal.SIG_IGN:
                continue
            signal.signal(signum, ChainedHandler(signum, previous, graceful.get(signum)))
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
    """What a signal means for the open spans: snapshots (graceful) or the end."""
    global _signalled
    if not _anything_open():
        return
    name = _name(signum)
    interrupted = (realthread.get_ident(), frame) if frame is not None else None
    if graceful:
        _signalled = _signalled or name
        _run_bounded(lambda reached: _snapshot_all(TRIGGER_SIGNAL, interrupted, reached), SNAPSHOT_WAIT_S)
        return
    flush_s = ABORT_FLUSH_S if signum == getattr(signal, "SIGABRT", None) else FLUSH_S
    final(TRIGGER_SIGNAL, f"{name} received while the span was still open", interrupted, flush_s)


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _at_exit() -> None:
    if _anything_open():
        description = "the process exited while the span was still open"
        if _signalled:
            description = f"{_signalled} received, then {description}"
        final(TRIGGER_SHUTDOWN, description, None, FLUSH_S)


# -- the work ---------------------------------------------------------------


def final(trigger: str, description: str, interrupted: Optional[tuple], flush_s: float) -> bool:
    """End every open watched span with a final sample, then flush; bounded in time."""
    quiet.silence_everywhere()  # the requests still unwinding write to the spans we ended
    return _run_bounded(
        lambda reached: _end_all(trigger, description, interrupted, flush_s),
        END_WAIT_S + FINAL_EXPORT_S + flush_s,
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
        for processor in _live():
            flush.extend(processor.end_open_spans(trigger, description, frames, _export_first))
        del frames
        _flush(flush, flush_s)  # only once every span has ended
    finally:
        _final_lock.release()


def _snapshot_all(trigger: str, interrupted: Optional[tuple], reached: Callable[[], None]) -> None:
    frames = _frames(interrupted)
    flush: list = []
    for processor in _live():
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
            failures.report_current("flushing on the way down failed")


def _export_first(provider: Any, samples: list) -> None:
    """The final samples, out before anything else that could take time."""
    if samples:
        snapshot.export_at_once(provider, samples, FINAL_EXPORT_S)


def _anything_open() -> bool:
    return any(p.open_roots() for p in _live())


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
            failures.report_current("the way-down work failed")
        finally:
            reached()

    try:
        realthread.start_thread(run, "otel-slowstack-final")
    except RuntimeError:  # interpreter shutting down (3.12+): no new threads, do it here
        run()
        return True
    return done.acquire(timeout=timeout_s)
