"""Final samples on the way down: the evidence leaves before the process does.

When the process is about to go with watched spans still open, each of them
gets a last sample (``slowstack.trigger`` ``signal`` or ``shutdown``). Those
samples leave first, at once, as ``slowstack.snapshot`` spans in one small
export of their own (``snapshot.export_at_once``): a Celery task past its
hard time limit gets SIGKILL 0.1 s after SIGTERM, far too soon for a batch
flush. Then each span gets status ERROR and its ``end()``, and only then are
the exporters flushed, within a bounded time. The moments covered:

- interpreter exit (``at_exit``, registered with ``atexit``): spans still
  open on daemon threads;
- a signal that means "die now" (``on_signal``, called by the handlers of
  ``signals.py``): SIGABRT (gunicorn's worker abort on ``--timeout``, with
  SIGKILL about a second behind), SIGQUIT, gunicorn's SIGINT, SIGTERM where
  nothing else handles it or where it is a Celery child's death.

A stop that lets requests finish (a graceful signal: see ``signals.py``)
ends nothing early. Spans already past their threshold get a fresh sample
exported at once as a ``slowstack.snapshot`` span, so the evidence is out if
the grace period runs out; if the process does go, the exit hook ends what
is still open, saying which signal came first.

This module only does the work. Processors register here (a weak registry,
no side effect on the process); ``process_hooks`` decides whether ``atexit``
and the signal handlers call in. Processors shut down are forgotten: their
spans are not ours to end.

The work runs on a short-lived helper thread while the signal handler waits
for it, within a deadline: a signal can arrive while the interrupted thread
holds a lock that ending a span needs (a span's own, the export queue's), and
only another thread can wait for that lock without deadlocking. The
interrupted frame is handed over, so a request running in the main thread
(gunicorn's sync worker) is sampled where it was stuck, not in the handler.
"""

from __future__ import annotations

import logging
import signal
import weakref
from types import FrameType
from typing import Any, Callable, Optional

from otel_slowstack import failures, snapshot
from otel_slowstack.capture.frames import current_frames
from otel_slowstack.conventions import TRIGGER_SHUTDOWN, TRIGGER_SIGNAL
from otel_slowstack.lifecycle import quiet, realthread

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
_final_lock = realthread.allocate_lock()
#: The graceful signal that came first, for the exit hook to say so.
_signalled: Optional[str] = None


def register(processor: Any) -> None:
    """Cover ``processor``'s spans on the way down: a weak reference, nothing installed."""
    _processors.add(processor)


def unregister(processor: Any) -> None:
    """A processor shut down: its provider has stopped exporting, leave its spans be."""
    _processors.discard(processor)


def _live() -> list:
    return [p for p in list(_processors) if not getattr(p, "_shut_down", False)]


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


def at_exit() -> None:
    """Interpreter exit: end what is still open (registered with ``atexit`` by ``process_hooks``)."""
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
