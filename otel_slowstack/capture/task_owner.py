"""``TaskOwner``: a span served by an asyncio task (ASGI servers, aiohttp, any coroutine).

Made in ``on_start`` (``owners.task_or_greenlet_owner``). Suspended, its
stack is its await chain (``await_chain``); holding the loop, the loop
thread's frames; handing work to a pool thread, the chain followed by that
thread's frames (``pool_threads``). When another task holds the loop while
this one waits for it, ``loop_blocked_by`` names that task's span.

``capture`` and ``interrupt`` run on the watchdog thread; ``withdraw``,
``release`` and the throw into the task (``_throw``) on the loop's thread.
"""

from __future__ import annotations

from types import BuiltinMethodType, FrameType, MethodType
from typing import Any, Callable, Optional, Pattern

from otel_slowstack.capture.async_exception import send_parked, withdraw_from
from otel_slowstack.capture.await_chain import await_chain
from otel_slowstack.capture.entry import candidates_of, entry_index, find_entry, frames_from_entry
from otel_slowstack.capture.frames import current_frames, frames_between, lines_of
from otel_slowstack.capture.pool_threads import worker_of
from otel_slowstack.lifecycle import interrupt_signal
from otel_slowstack.lifecycle.interrupt import outwards
from otel_slowstack.lifecycle.realthread import get_ident
from otel_slowstack.seams import context_variable, current_task_of, future_callbacks, is_task_wakeup

#: Other requests' await chains walked at most to find who holds the loop (Python < 3.12).
MAX_CHAINS_SEARCHED = 256
#: Loop iterations an interrupt waits for a task that is ready to run to await a future.
THROW_TRIES = 100
#: Seconds between two tries to throw into a task waiting in instrumentation
#: code, and how many (30 s, as for threads: ``interrupt.MAX_TRIES``).
RETRY_S = 0.02
LANDING_TRIES = 1500
_METHODS = (BuiltinMethodType, MethodType)


class TaskOwner:
    """A span served by an asyncio task."""

    __slots__ = (
        "task",
        "loop",
        "ident",
        "starter",
        "registry",
        "thread_ident",
        "loop_blocked_by",
        "_candidates",
        "_sent",
        "_safe",
    )

    def __init__(self, task: Any, loop: Any, ident: int, starter: Optional[FrameType], registry: Optional[dict]) -> None:
        self.task = task
        self.loop = loop
        self.ident = ident  # the loop's thread
        self.starter = starter
        self.registry = registry  # span_id -> Watched, to name the span holding the loop
        self.thread_ident = ident
        self.loop_blocked_by: Optional[str] = None
        self._candidates: Optional[dict] = None
        self._sent = False  # an exception was sent to the loop thread
        self._safe: Optional[Callable] = None  # where a thrown exception may land

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        # Each field read once: the request's ``release`` may clear them meanwhile.
        task, loop, registry = self.task, self.loop, self.registry
        candidates = candidates_of(self)
        if task is None or loop is None or candidates is None or task.done():
            return None
        running = current_task_of(loop)
        chain = await_chain(task, running)
        ident = self.ident
        blocked_by = None
        if chain.running is task:  # it holds the loop: its frames are the thread's
            frames = frames_from_entry(frames_by_thread.get(ident), candidates)
            if not frames:
                return None
        else:
            start = entry_index(chain.frames, candidates)
            if start is None:
                return None  # the task no longer runs the span's code
            frames = chain.frames[start:]
            if chain.running is not None:  # a task of its own holds the loop
                coro = chain.running.get_coro()
                frames += frames_between(frames_by_thread.get(ident), getattr(coro, "cr_frame", None)) or ()
            else:
                worker = worker_of(chain.pending, frames_by_thread, (ident, get_ident()))
                if worker is not None:  # a pool thread does the work meanwhile
                    ident, holder = worker
                    frames += frames_between(frames_by_thread.get(ident), holder) or ()
                elif running is not None:  # waiting for the loop, which another task holds
                    blocked_by = self._span_holding_loop(running, registry)
        lines = lines_of(frames, redact)
        if task.done():
            return None
        self.thread_ident = ident
        self.loop_blocked_by = blocked_by
        return lines

    def working_thread(self, frames_by_thread: dict) -> Optional[int]:
        """The loop's thread, or the pool thread doing the task's work: a capture says."""
        if self.capture(frames_by_thread, None) is None:
            return None
        return self.thread_ident

    def _span_holding_loop(self, running: Any, registry: Optional[dict]) -> Optional[str]:
        """The name of the watched span whose task holds the loop, if not ours."""
        others = []
        for watched in list((registry or {}).values()):
            owner = watched._owner  # read once, never made: that span may end meanwhile
            if isinstance(owner, TaskOwner):
                others.append((watched, owner.task))
        for watched, task in others:
            if task is running:
                return _other_name(watched, self)
        if hasattr(running, "get_context"):  # Python 3.12+: the span current in its context
            return _span_name_in_context(running, registry, self)
        for watched, task in others[:MAX_CHAINS_SEARCHED]:  # a task a request awaits, through its chain
            if task is not None and await_chain(task, running).running is running:
                return _other_name(watched, self)
        return None

    def scoped(self) -> bool:
        """A task's span is its coroutine's: always delimited."""
        return True

    def interrupt(self, exc_type: type, safe: Optional[Callable] = None) -> Optional[bool]:
        """Raise ``exc_type`` in the task, thread-safely.

        Holding the loop (sync work on the loop thread), the task gets it at
        its next bytecode, like a thread (``send_parked``). Suspended, it gets
        it at its innermost ``await``, on the loop: the future it awaits is
        cancelled (so the operation behind it cleans up as on any
        cancellation) and the task is woken with ``exc_type`` instead of
        ``CancelledError``; if that ``await`` is in instrumentation code, the
        loop tries again a little later. When a pool thread runs its work,
        that thread gets it too.
        """
        task, loop = self.task, self.loop
        if task is None or loop is None or task.done() or loop.is_closed():
            return False
        ident = self.ident
        chain = await_chain(task, current_task_of(loop))
        if chain.running is not None:
            holder = chain.running
            if safe is None:

                def safe_here(innermost: FrameType) -> bool:
                    return current_task_of(loop) is holder

            else:
                candidates = candidates_of(self)  # read once: ``release`` may run meanwhile
                if candidates is None:
                    return False

                def safe_here(innermost: FrameType) -> bool:
                    return current_task_of(loop) is holder and safe(outwards(innermost), find_entry(innermost, candidates))

                if interrupt_signal.serves(ident):  # a loop on the main thread: break a blocking call too
                    return interrupt_signal.request(self, exc_type, safe_here)
            sent = send_parked(ident, exc_type, safe_here)
            self._sent = sent is True
            return sent
        self._safe = safe
        worker = worker_of(chain.pending, current_frames(), (ident, get_ident()))
        if worker is not None:
            # Left to land even once the span has ended: it must stop the pool
            # thread's work, which goes on after the response has gone out.
            pool_ident, frame = worker
            if safe is None:  # anywhere below the work item's function

                def lands(innermost: FrameType) -> bool:
                    return innermost is not frame and frames_between(innermost, frame) is not None

            else:  # only inside the work item's function: never in the pool's own loop

                def lands(innermost: FrameType) -> bool:
                    return safe(outwards(innermost), frame)

            send_parked(pool_ident, exc_type, lands)
        try:
            loop.call_soon_threadsafe(self._throw, exc_type)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def _throw(self, exc_type: type, tries: int = 0) -> None:
        """On the loop thread: the task raises ``exc_type`` at its innermost await."""
        task, loop = self.task, self.loop
        if task is None or loop is None or task.done():
            return  # the span ended first (``release`` runs on this thread too)
        if not self._lands_safely(task):
            if tries < LANDING_TRIES:  # in instrumentation code now: a little later
                loop.call_later(RETRY_S, self._throw, exc_type, tries + 1)
            return
        if throw_into(task, exc_type):
            return
        if tries < THROW_TRIES:  # ready to run, awaiting nothing yet: once it does
            loop.call_soon(self._throw, exc_type, tries + 1)
        else:
            task.cancel(str(exc_type()))  # never awaits a future: the next best thing

    def _lands_safely(self, task: Any) -> bool:
        """On the loop thread: whether the task's innermost await is in its own code."""
        safe = self._safe
        if safe is None:
            return True
        candidates = candidates_of(self)
        if candidates is None:
            return False
        frames = await_chain(task).frames
        start = entry_index(frames, candidates)
        if start is None:
            return False
        return safe(reversed(frames[start:]), frames[start])

    def withdraw(self) -> None:
        """On the loop thread: take back an exception sent to it and not yet raised."""
        interrupt_signal.cancel(self)
        if self._sent:
            self._sent = False
            withdraw_from(self.ident)

    def hub(self) -> Any:
        """Not a greenlet: no gevent hub."""
        return None

    def release(self) -> None:
        self.task = self.loop = self.starter = self.registry = None
        self._candidates = self._safe = None


def throw_into(task: Any, exc_type: type) -> bool:
    """On the loop thread: make the suspended ``task`` raise ``exc_type`` where
    it awaits a future; False if it awaits none right now."""
    chain = await_chain(task)
    target, leaf = chain.target, chain.leaf  # the innermost task, unless shielded
    if leaf is None or leaf.done():
        return False
    for entry in future_callbacks(leaf):
        callback, context = entry if type(entry) is tuple else (entry, None)
        if is_task_wakeup(callback, _METHODS) and callback.__self__ is target:  # the task's own wake-up
            leaf.remove_done_callback(callback)
            leaf.cancel()
            carrier = target.get_loop().create_future()
            carrier.add_done_callback(callback, context=context)
            carrier.set_exception(exc_type())
            return True
    return False


def _other_name(watched: Any, owner: Any) -> Optional[str]:
    span = watched.span
    return None if watched._owner is owner or span is None else span.name


def _span_name_in_context(task: Any, registry: Optional[dict], owner: Any) -> Optional[str]:
    """The span current in ``task``'s context (Python 3.12+ ``Task.get_context``);
    its watched root's name when there is one."""
    try:
        from opentelemetry import trace

        variable = context_variable()
        if variable is None:
            return None
        span = trace.get_current_span(task.get_context().get(variable))
        watched = (registry or {}).get(span.get_span_context().span_id)
        if watched is not None:
            return _other_name(watched, owner)
        return getattr(span, "name", None)
    except Exception:
        return None
