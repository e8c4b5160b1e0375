"""An asyncio task's stack, read from outside the task without running its code.

A suspended task has no frames on any thread's stack: its coroutines wait in
memory, each awaiting the next (``cr_await``; ``gi_yieldfrom`` for
generator-based coroutines, ``ag_await`` for async generators) down to a
future. ``await_chain`` follows those links, outermost first, and from that
future on to the work it stands for:

- a task awaited directly, or a child of ``gather``: that task's coroutines;
- ``shield``'s inner future, and the ``concurrent.futures`` future that
  ``run_in_executor``, ``to_thread`` and ``wrap_future`` chain to it (both
  sit in the closures of done-callbacks asyncio itself installs);
- where the chain dead-ends on a plain future (a stream, an event), a
  pending task of a task group the chain holds (Starlette's
  ``BaseHTTPMiddleware`` runs the rest of the request that way), or of
  asyncio's own helpers (``wait_for``'s inner task).

Only the interpreter's and asyncio's own objects are read: attributes of
coroutines, generators, futures and tasks, frame locals, and
``gc.get_referents`` for the few C iterators that hide their target
(``FutureIter``, ``coroutine_wrapper``, ``async_generator_asend``), which
visits references and never runs Python code. Other objects met on the way
are only compared by identity and exact type (``type(x)``, never
``isinstance``, which reads ``__class__`` and so may run a lazy proxy's code).

``worker_of`` finds the pool thread that will complete the future a chain
ends on: one of that thread's outermost frames holds the very future (anyio's
worker loop as a local, ``concurrent.futures``' ``_WorkItem`` as an
attribute). Identity, not guesswork, and no cost before a sample is due.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from concurrent.futures import Future as ConcurrentFuture
from types import (
    AsyncGeneratorType,
    BuiltinFunctionType,
    CodeType,
    CoroutineType,
    FrameType,
    FunctionType,
    GeneratorType,
    MethodType,
    ModuleType,
)
from typing import Any, NamedTuple, Optional

#: Coroutine frames kept at most (the formatter elides far below this).
MAX_CHAIN = 1024
#: Outermost frames of a thread searched for the future it works for.
WORKER_DEPTH = 8
#: Innermost frames of a blocked thread searched for the futures it waits on.
WAIT_DEPTH = 6
#: Innermost chain frames searched for a task group at a dead end.
GROUP_SEARCH = 32
_STEPS = 4 * MAX_CHAIN
#: C iterators an ``await`` may hold whose only interesting referent is the
#: awaitable they wrap.
_WRAPPERS = frozenset(
    {"FutureIter", "coroutine_wrapper", "async_generator_asend", "async_generator_athrow", "anext_awaitable"}
)
_NO_DESCENT = (
    type, ModuleType, FunctionType, MethodType, BuiltinFunctionType, FrameType, CodeType,
    str, bytes, int, float, complex, bool, tuple, list, dict, set, frozenset, type(None),
    threading.Thread,  # a pool's threads hold their queue, never one request's future
)
_COROUTINES = (CoroutineType, GeneratorType, AsyncGeneratorType)
_FUTURES = tuple({asyncio.Future, getattr(asyncio.futures, "_PyFuture", asyncio.Future)})
_TASKS = tuple({asyncio.Task, getattr(asyncio.tasks, "_PyTask", asyncio.Task)})


class Chain(NamedTuple):
    """What a task is waiting on, as plain references (no formatting yet)."""

    frames: list
    """Coroutine frames, outermost first."""
    tasks: list
    """The tasks walked through, outermost first."""
    leaf: Any
    """The asyncio future ``target`` waits on, when known."""
    pending: list
    """Pending futures (asyncio or ``concurrent.futures``) the leaf stands for."""
    running: Any
    """A walked task that runs on the loop right now: the rest is on the thread."""
    target: Any
    """The innermost task not behind ``shield``: the one to interrupt."""


def is_future(obj: Any) -> bool:
    """An asyncio future (or task), by its exact type's ancestry."""
    return issubclass(type(obj), _FUTURES)


def is_task(obj: Any) -> bool:
    return issubclass(type(obj), _TASKS)


def _is_concurrent(obj: Any) -> bool:
    return issubclass(type(obj), ConcurrentFuture)


def _pending(obj: Any) -> bool:
    if _is_concurrent(obj):
        return obj._state in ("PENDING", "RUNNING")
    return is_future(obj) and obj._state == "PENDING"


def await_chain(task: Any, running_task: Any = None) -> Chain:
    """Follow ``task``'s awaits down to what it waits on now."""
    frames: list = []
    tasks: list = [task]
    pending: list = []
    seen = {id(task)}
    if task is running_task:
        return Chain(frames, tasks, None, pending, task, task)
    obj = task.get_coro()
    leaf = None
    target = task
    shielded = False
    steps = 0
    while obj is not None and len(frames) < MAX_CHAIN and steps < _STEPS:
        steps += 1
        kind = type(obj)
        if kind is CoroutineType:
            frame, following = obj.cr_frame, obj.cr_await
        elif kind is GeneratorType:
            frame, following = obj.gi_frame, obj.gi_yieldfrom
            if following is None and frame is not None and frame.f_code.co_name == "__await__":
                future = _pure_python_future(frame)  # asyncio's Python Future awaited
                if future is not None:
                    obj = future
                    continue
        elif kind is AsyncGeneratorType:
            frame, following = obj.ag_frame, obj.ag_await
        elif is_future(obj):
            if not shielded:
                leaf = obj
            obj, through_shield = _beneath(obj, seen, pending)
            if obj is None:
                obj = _dead_end(frames, seen)
            if obj is None:
                break
            seen.add(id(obj))
            tasks.append(obj)
            del pending[:]
            shielded = shielded or through_shield
            if not shielded:
                target, leaf = obj, None
            if obj is running_task:
                return Chain(frames, tasks, leaf, pending, obj, target)
            obj = obj.get_coro()
            continue
        elif kind.__name__ in _WRAPPERS:
            obj = _wrapped(obj)
            continue
        else:
            break  # an awaitable of its own making: nothing more to read safely
        if frame is None:
            break  # finished, or not started yet
        frames.append(frame)
        obj = following
    return Chain(frames, tasks, leaf, pending, None, target)


def _pure_python_future(frame: FrameType) -> Any:
    """The future whose Python ``__await__`` generator this is."""
    if not frame.f_globals.get("__name__", "").startswith("asyncio."):
        return None
    candidate = frame.f_locals.get("self")
    return candidate if is_future(candidate) else None


def _wrapped(obj: Any) -> Any:
    for ref in gc.get_referents(obj):
        if type(ref) in _COROUTINES or is_future(ref):
            return ref
    return None


def _beneath(future: Any, seen: set, pending: list) -> tuple:
    """``(task, through_shield)``: the task doing the work ``future`` waits
    for, if any, and whether ``shield`` stands between them; collects the
    pending futures met on the way (for ``worker_of``)."""
    current = future
    through_shield = False
    for _ in range(8):
        if is_task(current):
            if id(current) in seen or current.done():
                return None, False
            return current, through_shield
        if not _pending(current):
            return None, False  # its result is in: the task just has not resumed yet
        pending.append(current)
        inner, through_callback = _inner(current)
        if inner is None:
            return None, False
        if _is_concurrent(inner):
            pending.append(inner)
            return None, False
        through_shield = through_shield or through_callback
        current = inner
    return None, False


def _inner(future: Any) -> tuple:
    """``(inner, through_callback)``: the pending future ``future`` was made to
    wait for, read from asyncio's own links; ``through_callback`` for the
    links ``shield`` and ``wrap_future`` make."""
    if type(future).__name__ == "_GatheringFuture":
        for child in list(getattr(future, "_children", None) or ()):
            if _pending(child):
                return child, False
        return None, False
    for entry in list(getattr(future, "_callbacks", None) or ()):
        callback = entry[0] if type(entry) is tuple else entry
        if type(callback) is not FunctionType or not callback.__closure__:
            continue  # bound methods are the waiters' wake-ups, not what is awaited
        for cell in callback.__closure__:
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if value is not future and _pending(value):
                return value, True
    return None, False


def _dead_end(frames: list, seen: set) -> Any:
    """A pending task the chain's own frames hold: their task group's, or one
    an asyncio helper (``wait_for``, ``wait``) is waiting for."""
    groups = _task_group_types()
    for frame in reversed(frames[-GROUP_SEARCH:]):
        try:
            values = list(frame.f_locals.values())
        except Exception:
            continue
        in_asyncio = frame.f_globals.get("__name__", "").startswith("asyncio.")
        for value in values:
            candidates: Any = ()
            if groups and issubclass(type(value), groups):
                candidates = getattr(value, "_tasks", None) or ()
            elif in_asyncio:
                candidates = value if type(value) in (set, list, tuple) else (value,)
            for candidate in list(candidates):
                if id(candidate) not in seen and is_task(candidate) and _pending(candidate):
                    return candidate
    return None


def _task_group_types() -> tuple:
    """asyncio's and anyio's task group classes, where loaded."""
    found = []
    for module, name in (("asyncio.taskgroups", "TaskGroup"), ("anyio._backends._asyncio", "TaskGroup")):
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type):
            found.append(kind)
    return tuple(found)


def worker_of(pending: list, frames_by_thread: dict, skip: tuple) -> Optional[tuple]:
    """``(thread ident, frame)``: the thread whose outer frames hold one of the
    ``pending`` futures (so it works to complete it), and the innermost such
    frame (where the work begins), or None."""
    if not pending:
        return None
    wanted = {id(future): future for future in pending}
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
                found.extend(c for c in list(candidates)[:64] if _is_concurrent(c) and _pending(c))
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


def frames_between(innermost: Optional[FrameType], outer: FrameType) -> Optional[list]:
    """Frames from ``outer`` inwards to ``innermost``, outermost first; None if
    ``outer`` is not on that stack. No depth limit: ``lines_of`` shortens a
    runaway recursion, keeping both ends."""
    stack: list = []
    frame = innermost
    while frame is not None:
        stack.append(frame)
        if frame is outer:
            stack.reverse()
            return stack
        frame = frame.f_back
    return None
