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

The pending futures a chain ends on are handed to ``pool_threads.worker_of``
to find the thread doing the work. asyncio's private fields read here
(``_state``, ``_callbacks``, ``_children``, task groups' ``_tasks``) are
``seams.py``'s. Runs on the watchdog thread (samples) and on the loop's
thread (an interrupt thrown into a task).
"""

from __future__ import annotations

import gc
from types import AsyncGeneratorType, CoroutineType, FrameType, FunctionType, GeneratorType
from typing import Any, NamedTuple

from otel_slowstack.capture.pool_threads import is_concurrent, is_pending
from otel_slowstack.seams import (
    AWAIT_WRAPPERS,
    FUTURE_TYPES,
    TASK_TYPES,
    future_callbacks,
    gathering_children,
    task_group_tasks,
    task_group_types,
)

#: Coroutine frames kept at most (the formatter elides far below this).
MAX_CHAIN = 1024
#: Innermost chain frames searched for a task group at a dead end.
GROUP_SEARCH = 32
_STEPS = 4 * MAX_CHAIN
_COROUTINES = (CoroutineType, GeneratorType, AsyncGeneratorType)


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
    return issubclass(type(obj), FUTURE_TYPES)


def is_task(obj: Any) -> bool:
    return issubclass(type(obj), TASK_TYPES)


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
        elif kind.__name__ in AWAIT_WRAPPERS:
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
        if not is_pending(current):
            return None, False  # its result is in: the task just has not resumed yet
        pending.append(current)
        inner, through_callback = _inner(current)
        if inner is None:
            return None, False
        if is_concurrent(inner):
            pending.append(inner)
            return None, False
        through_shield = through_shield or through_callback
        current = inner
    return None, False


def _inner(future: Any) -> tuple:
    """``(inner, through_callback)``: the pending future ``future`` was made to
    wait for, read from asyncio's own links; ``through_callback`` for the
    links ``shield`` and ``wrap_future`` make."""
    children = gathering_children(future)
    if children is not None:
        for child in children:
            if is_pending(child):
                return child, False
        return None, False
    for entry in future_callbacks(future):
        callback = entry[0] if type(entry) is tuple else entry
        if type(callback) is not FunctionType or not callback.__closure__:
            continue  # bound methods are the waiters' wake-ups, not what is awaited
        for cell in callback.__closure__:
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if value is not future and is_pending(value):
                return value, True
    return None, False


def _dead_end(frames: list, seen: set) -> Any:
    """A pending task the chain's own frames hold: their task group's, or one
    an asyncio helper (``wait_for``, ``wait``) is waiting for."""
    groups = task_group_types()
    for frame in reversed(frames[-GROUP_SEARCH:]):
        try:
            values = list(frame.f_locals.values())
        except Exception:
            continue
        in_asyncio = frame.f_globals.get("__name__", "").startswith("asyncio.")
        for value in values:
            candidates: Any = ()
            if groups and issubclass(type(value), groups):
                candidates = task_group_tasks(value)
            elif in_asyncio:
                candidates = value if type(value) in (set, list, tuple) else (value,)
            for candidate in list(candidates):
                if id(candidate) not in seen and is_task(candidate) and is_pending(candidate):
                    return candidate
    return None
