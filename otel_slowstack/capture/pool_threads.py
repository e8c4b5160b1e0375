"""Which thread of a pool works on the future a request waits for.

A request that hands work to a thread pool (``run_in_executor``,
``to_thread``, anyio's ``to_thread.run_sync``, a ``concurrent.futures``
executor) waits on a future while another thread does the work. Its own
stack then says only "waiting": the sample should show what the pool thread
does. ``worker_of`` finds that thread by identity, not guesswork: one of its
outermost frames holds the very future (anyio's worker loop as a local,
``concurrent.futures``' ``_WorkItem`` as an attribute of ``self``).
``futures_waited_on`` reads the futures a plain thread blocks on from its
innermost ``concurrent.futures`` frames.

No cost before a sample is due. Runs on the watchdog thread (samples, CPU
baselines) and, for an interrupt, on the loop's thread; other threads' frames
and their locals are only read, and other objects compared by identity and
exact type (``type(x)``, never ``isinstance``, which may run a proxy's code).
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import Future as ConcurrentFuture
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any, Optional

from otel_slowstack.seams import FUTURE_TYPES, future_state

#: Outermost frames of a thread searched for the future it works for.
WORKER_DEPTH = 8
#: Innermost frames of a blocked thread searched for the futures it waits on.
WAIT_DEPTH = 6
_NO_DESCENT = (
    type, ModuleType, FunctionType, MethodType, BuiltinFunctionType, FrameType, CodeType,
    str, bytes, int, float, complex, bool, tuple, list, dict, set, frozenset, type(None),
    threading.Thread,  # a pool's threads hold their queue, never one request's future
)


def is_concurrent(obj: Any) -> bool:
    """A ``concurrent.futures`` future, by its exact type's ancestry."""
    return issubclass(type(obj), ConcurrentFuture)


def is_pending(obj: Any) -> bool:
    """A future (asyncio or ``concurrent.futures``) whose result is not in yet."""
    if is_concurrent(obj):
        return future_state(obj) in ("PENDING", "RUNNING")
    return issubclass(type(obj), FUTURE_TYPES) and future_state(obj) == "PENDING"


def worker_of(pending_futures: list, frames_by_thread: dict, skip: tuple) -> Optional[tuple]:
    """``(thread ident, frame)``: the thread whose outer frames hold one of the
    ``pending_futures`` (so it works to complete it), and the innermost such
    frame (where the work begins), or None."""
    if not pending_futures:
        return None
    wanted = {id(future): future for future in pending_futures}
    for ident, innermost in list(frames_by_thread.items()):
        if ident in skip:
            continue
        holder = None
        for frame in outermost(innermost, WORKER_DEPTH):
            if _holds(frame, wanted):
                holder = frame
        if holder is not None:
            return ident, holder
    return None


def futures_waited_on(innermost: Optional[FrameType]) -> list:
    """Pending ``concurrent.futures`` futures a thread blocks on right now
    (``Future.result``, ``wait``, ``as_completed``), read from the innermost
    frames of that module."""
    found: list = []
    frame = innermost
    for _ in range(WAIT_DEPTH):
        if frame is None:
            break
        if frame.f_globals.get("__name__") == "concurrent.futures._base":
            for value in list(frame.f_locals.values()):
                candidates = value if type(value) in (set, frozenset, list, tuple) else (value,)
                found.extend(c for c in list(candidates)[:64] if is_concurrent(c) and is_pending(c))
        frame = frame.f_back
    return found


def outermost(innermost: Optional[FrameType], count: int, limit: int = 4096) -> list:
    """The ``count`` outermost frames of a stack, outermost first."""
    stack: list = []
    frame = innermost
    while frame is not None and limit > 0:
        stack.append(frame)
        frame = frame.f_back
        limit -= 1
    return stack[: -count - 1 : -1]


def _holds(frame: FrameType, wanted: dict) -> bool:
    """A local of ``frame``, or an attribute of its ``self`` (a work item's
    ``.future``), is among ``wanted`` (by id)."""
    try:
        local = frame.f_locals
        values = list(local.values())
    except Exception:
        return False
    ids = wanted.keys()
    if not ids.isdisjoint(map(id, values)):
        return True
    owner = local.get("self")
    if owner is None or issubclass(type(owner), _NO_DESCENT):
        return False
    for ref in gc.get_referents(owner)[:32]:  # its attributes, or its ``__dict__``
        if id(ref) in wanted:
            return True
        if type(ref) is dict and not ids.isdisjoint(map(id, list(ref.values())[:64])):
            return True
    return False
