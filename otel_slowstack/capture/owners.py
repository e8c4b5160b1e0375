"""Who runs a watched span's code, and how to read (or interrupt) it from outside.

An owner is recorded in ``on_start`` for the price of a few attribute reads
(``task_or_greenlet_owner``; a plain thread's later, by ``Watched.owner``), and asked for its stack only when a sample is due. Every
owner answers the same questions:

- ``thread_ident``: the OS thread it runs on (``thread.id``, the CPU clock),
  as of the last capture;
- ``capture(frames_by_thread, redact)``: its frames from the span's entry
  inwards as plain ``FrameLine`` data, or None when it no longer serves the
  span;
- ``interrupt(exc_type, safe)``: make ``exc_type`` raise inside it, where
  ``safe`` (``interrupt.landing_is_safe``) allows it to land;
- ``release()``: drop references once the span has ended.

Three kinds, one per way Python servers run a request:

- ``ThreadOwner``: one OS thread from start to end (WSGI, Celery); while it
  waits on a ``concurrent.futures`` future, followed by the frames of the
  pool thread working on it;
- ``TaskOwner``: an asyncio task (ASGI). Suspended, its stack is its await
  chain (``tasks.py``); holding the loop, the loop thread's frames; handing
  work to a pool thread, the chain followed by that thread's frames;
- ``GreenletOwner``: a greenlet (gevent). Suspended, its saved frames
  (``gr_frame``); running, its thread's frames.

``TaskOwner`` and ``GreenletOwner`` also have ``withdraw()``: on the owning
thread, take back an exception ``interrupt`` sent to it that has not landed.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import time
from asyncio import _get_running_loop, current_task, tasks
from types import BuiltinFunctionType, BuiltinMethodType, FrameType, MethodType
from typing import Any, Callable, Optional, Pattern

from otel_slowstack.lifecycle import interrupt_signal
from otel_slowstack.capture.entry import entry_candidates, find_entry
from otel_slowstack.capture.frames import current_frames, frame_lines, lines_of
from otel_slowstack.lifecycle.interrupt import outwards as _outwards
from otel_slowstack.lifecycle.interrupt import wraps_a_call as _wraps_a_call
from otel_slowstack.lifecycle.interrupt import scoped as _scoped
from otel_slowstack.lifecycle.realthread import get_ident
from otel_slowstack.capture.tasks import await_chain, frames_between, futures_waited_on, worker_of

_modules = sys.modules
_METHODS = (BuiltinMethodType, MethodType)
#: ``current_task(loop)`` at C speed: Python 3.11's is a Python function over
#: the C dict, which is read directly here (it is safe from any thread).
_current_task_of: Callable[[Any], Any] = (
    current_task
    if isinstance(current_task, BuiltinFunctionType) or not isinstance(getattr(tasks, "_current_tasks", None), dict)
    else tasks._current_tasks.get
)
#: Other requests' await chains walked at most to find who holds the loop (Python < 3.12).
MAX_CHAINS_SEARCHED = 256
#: Loop iterations an interrupt waits for a task that is ready to run to await a future.
THROW_TRIES = 100
#: Checks of a parked thread in one ``send_parked`` while the OS keeps preempting the watchdog.
PARK_TRIES = 3
#: Seconds between two tries to throw into a task or greenlet waiting in instrumentation code,
#: and how many (30 s, as for threads: ``interrupt.MAX_TRIES``).
RETRY_S = 0.02
LANDING_TRIES = 1500


class ThreadOwner:
    """A span served by one OS thread from start to end (WSGI, Celery, ...)."""

    __slots__ = ("ident", "starter", "start_lasti", "_candidates", "thread_ident")

    def __init__(self, ident: int, starter: Optional[FrameType], start_lasti: Optional[int] = None) -> None:
        self.ident = ident
        self.starter = starter
        #: The starter's instruction as the span started: a ``with`` statement
        #: or a plain ``start_span`` call (see ``interrupt.scoped``).
        # Where the starter stood when the span started (``scoped``): given by
        # a caller that made the owner later, read now otherwise.
        if start_lasti is None:
            start_lasti = starter.f_lasti if starter is not None else -1
        self.start_lasti = start_lasti
        self._candidates: Optional[dict] = None
        #: The thread whose frames end the last capture: a pool thread while
        #: this one waits on a ``concurrent.futures`` future it works on.
        self.thread_ident = ident

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        candidates = _candidates_of(self)  # read once: ``release`` may run meanwhile
        innermost = frames_by_thread.get(self.ident)
        if innermost is None or candidates is None:
            return None
        entry = find_entry(innermost, candidates)
        if entry is None:
            return None  # the thread has left the span's code: moved on
        frames = frames_between(innermost, entry) or []
        ident = self.ident
        worker = worker_of(futures_waited_on(innermost), frames_by_thread, (ident, get_ident()))
        if worker is not None:  # it waits on a pool thread: show what that thread does
            ident, holder = worker
            frames += frames_between(frames_by_thread.get(ident), holder) or ()
        self.thread_ident = ident
        return lines_of(frames, redact)

    def scoped(self) -> bool:
        """Whether a ``with`` block (or an instrumentation) delimits the span on this thread.

        A function decorated with ``@tracer.start_as_current_span(...)`` is
        called from its starter through OpenTelemetry's wrapper, whose ``with``
        is still on the stack while the function runs.
        """
        starter = self.starter
        if _scoped(starter, self.start_lasti):
            return True
        frame = _current_frames().get(self.ident)
        while frame is not None and starter is not None:
            caller = frame.f_back
            if caller is starter:
                return _wraps_a_call(frame)
            frame = caller
        return False

    def interrupt(self, exc_type: type, safe: Optional[Callable] = None) -> Optional[bool]:
        """Raise ``exc_type`` in the thread, where ``safe(frames, entry)`` allows.

        The main thread gets a signal (``interrupt_signal.py``): a blocking
        call returns at once, and the handler raises only at a safe point.
        Another thread gets ``PyThreadState_SetAsyncExc``, sent only while it
        is parked at a safe point (``send_parked``); blocked inside a C call
        (a socket read, ``time.sleep``) it sees it when that call returns.
        True: sent; None: not at a safe point now, try again; False: gone.
        Without ``safe``, sent at once, wherever the thread is.
        """
        if safe is None:
            ident = ctypes.c_ulong(self.ident)
            done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, ctypes.py_object(exc_type))
            if done > 1:  # more than one thread state matched: take it back everywhere
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, None)
                return False
            return done == 1
        candidates = _candidates_of(self)  # read once: ``release`` may run meanwhile
        if candidates is None:
            return False

        def safe_here(innermost: FrameType) -> bool:
            return safe(_outwards(innermost), find_entry(innermost, candidates))

        if interrupt_signal.serves(self.ident):
            return interrupt_signal.request(self, exc_type, safe_here)
        return send_parked(self.ident, exc_type, safe_here)

    def withdraw(self) -> None:
        """Take back an exception sent to the thread and not yet raised (a no-op if none)."""
        if interrupt_signal.serves(self.ident):
            interrupt_signal.cancel(self)
        withdraw_from(self.ident)

    def release(self) -> None:
        """Drop frame references once the span has ended."""
        self.starter = None
        self._candidates = None


class TaskOwner:
    """A span served by an asyncio task: ASGI servers, aiohttp, any coroutine."""

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
        candidates = _candidates_of(self)
        if task is None or loop is None or candidates is None or task.done():
            return None
        running = _current_task_of(loop)
        chain = await_chain(task, running)
        ident = self.ident
        blocked_by = None
        if chain.running is task:  # it holds the loop: its frames are the thread's
            innermost = frames_by_thread.get(ident)
            entry = find_entry(innermost, candidates)
            frames = frames_between(innermost, entry) if entry is not None else None
            if not frames:
                return None
        else:
            start = _entry_index(chain.frames, candidates)
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
        chain = await_chain(task, _current_task_of(loop))
        if chain.running is not None:
            holder = chain.running
            if safe is None:
                self._sent = raise_in_thread(ident, exc_type, lambda: _current_task_of(loop) is holder)
                return self._sent
            candidates = _candidates_of(self)  # read once: ``release`` may run meanwhile
            if candidates is None:
                return False

            def safe_here(innermost: FrameType) -> bool:
                return _current_task_of(loop) is holder and safe(_outwards(innermost), find_entry(innermost, candidates))

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
            if safe is None:
                raise_in_thread(pool_ident, exc_type, lambda: _working_below(pool_ident, frame))
            else:  # only inside the work item's function: never in the pool's own loop
                send_parked(pool_ident, exc_type, lambda innermost: safe(_outwards(innermost), frame))
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
        candidates = _candidates_of(self)
        if candidates is None:
            return False
        frames = await_chain(task).frames
        start = _entry_index(frames, candidates)
        if start is None:
            return False
        return safe(reversed(frames[start:]), frames[start])

    def withdraw(self) -> None:
        """On the loop thread: take back an exception sent to it and not yet raised."""
        interrupt_signal.cancel(self)
        if self._sent:
            self._sent = False
            withdraw_from(self.ident)

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
    for entry in list(getattr(leaf, "_callbacks", None) or ()):
        callback, context = entry if type(entry) is tuple else (entry, None)
        if _is_method(callback) and callback.__self__ is target:  # the task's own wake-up
            leaf.remove_done_callback(callback)
            leaf.cancel()
            carrier = target.get_loop().create_future()
            carrier.add_done_callback(callback, context=context)
            carrier.set_exception(exc_type())
            return True
    return False


def _is_method(callback: Any) -> bool:
    kind = type(callback)
    return kind in _METHODS or kind.__name__ == "TaskWakeupMethWrapper"  # Python 3.9's C tasks


class GreenletOwner:
    """A span served by a greenlet (gevent, eventlet): many per OS thread."""

    __slots__ = ("greenlet", "ident", "starter", "_candidates", "_sent")

    def __init__(self, greenlet: Any, ident: int, starter: Optional[FrameType]) -> None:
        self.greenlet = greenlet
        self.ident = ident
        self.starter = starter
        self._candidates: Optional[dict] = None
        self._sent = False  # an exception was sent to the thread while it ran

    @property
    def thread_ident(self) -> int:
        return self.ident

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        greenlet = self.greenlet  # each field read once: ``release`` may run meanwhile
        candidates = _candidates_of(self)
        if greenlet is None or candidates is None or greenlet.dead:
            return None
        innermost = greenlet.gr_frame  # set while it is switched out
        if innermost is None:  # running now: its frames are its thread's
            innermost = frames_by_thread.get(self.ident)
        entry = find_entry(innermost, candidates)
        if entry is None:
            return None  # another greenlet runs, or this one has moved on
        return frame_lines(innermost, entry, redact)

    def interrupt(self, exc_type: type, safe: Optional[Callable] = None) -> Optional[bool]:
        """Raise ``exc_type`` in the greenlet, thread-safely.

        Running (hogging its thread), it gets it at its next bytecode, like a
        thread (``send_parked``). Switched out, the hub throws it in where it
        waits, as gevent's own ``Greenlet.kill`` does, unless it waits inside
        instrumentation code; then the hub tries again a little later.
        """
        greenlet = self.greenlet
        if greenlet is None or greenlet.dead:
            return False
        if self._candidates is None:
            self._candidates = entry_candidates(self.starter)
        candidates = self._candidates
        if greenlet.gr_frame is None:
            if safe is None:
                self._sent = raise_in_thread(self.ident, exc_type, lambda: greenlet.gr_frame is None and not greenlet.dead)
                return self._sent

            def safe_here(innermost: FrameType) -> bool:
                running = greenlet.gr_frame is None and not greenlet.dead
                return running and safe(_outwards(innermost), find_entry(innermost, candidates))

            sent = send_parked(self.ident, exc_type, safe_here)
            self._sent = sent is True
            return sent
        hub = _hub_of(greenlet)
        if hub is None:
            return False
        hub.loop.run_callback_threadsafe(self._throw, exc_type, safe, 0)
        return True

    def _throw(self, exc_type: type, safe: Optional[Callable] = None, tries: int = 0) -> None:
        """In the hub: switch into the greenlet, raising ``exc_type`` there."""
        greenlet = self.greenlet
        if greenlet is None or greenlet.dead:
            return
        innermost = greenlet.gr_frame
        if safe is not None and innermost is not None:
            entry = find_entry(innermost, self._candidates or {})
            if not safe(_outwards(innermost), entry):
                hub = _hub_of(greenlet)
                if hub is not None and tries < LANDING_TRIES:
                    timer = hub.loop.timer(RETRY_S)
                    timer.start(self._throw, exc_type, safe, tries + 1)
                return
        greenlet.throw(exc_type())

    def withdraw(self) -> None:
        """In the greenlet: take back an exception sent to its thread and not yet raised."""
        if self._sent:
            self._sent = False
            withdraw_from(self.ident)

    def release(self) -> None:
        self.greenlet = self.starter = None
        self._candidates = None


def hub_of_owner(owner: Any) -> Any:
    """The gevent hub a greenlet owner runs under, or None (not a greenlet)."""
    greenlet = getattr(owner, "greenlet", None) if isinstance(owner, GreenletOwner) else None
    return _hub_of(greenlet) if greenlet is not None else None


def _hub_of(greenlet: Any) -> Any:
    hub_module = _modules.get("gevent.hub")
    if hub_module is None:
        return None
    parent = greenlet.parent
    for _ in range(8):
        if parent is None or isinstance(parent, hub_module.Hub):
            return parent
        parent = parent.parent
    return None


def send_parked(ident: int, exc_type: type, safe_here: Callable[[FrameType], bool]) -> Optional[bool]:
    """``PyThreadState_SetAsyncExc`` to thread ``ident``, only while it is
    parked at a frame where ``safe_here`` allows the exception to land.

    The exception lands where the thread next checks for it: at once if it
    waits for the GIL at a bytecode boundary, right after the C call it is
    blocked in otherwise; either way in the innermost frame seen here,
    provided the thread does not run between the check and the send. It
    cannot: this thread first gives up the GIL and takes it back
    (``time.sleep(0)``), and CPython lets a waiting thread ask for the GIL only
    after a whole switch interval (5 ms) of waiting, counted from that take;
    the check and the send take microseconds, with the garbage collector
    (whose finalizers could release the GIL) held off. The target's frame and
    instruction are read again after the send: had it moved all the same, the
    exception is taken back and not sent again.

    True: sent; None: not at a safe point now; False: gone or moved.
    """
    # The walk that decides can be long (a recursion 20,000 frames deep): do
    # it first, outside the window. Inside it, a thread still in that same
    # innermost frame object is still on that same stack: the exception lands
    # in that frame, which the walk found safe.
    checked = _current_frames().get(ident)
    if checked is None:
        return False
    if not safe_here(checked):
        return None
    enabled = gc.isenabled()
    gc.disable()
    try:
        sleep = _real_sleep()
        for _ in range(PARK_TRIES):
            sleep(0)  # a fresh hold of the GIL
            began = _clock()
            innermost = _current_frames().get(ident)
            if innermost is None:
                return False
            if innermost is not checked and not safe_here(innermost):
                return None
            if _clock() - began < _switch_interval() / 2:
                break
            # The OS took this thread away meanwhile: another thread may be
            # asking for the GIL by now. Check again on a fresh hold.
            checked = innermost
        else:
            return None
        thread = ctypes.c_ulong(ident)
        done = _set_async_exc(thread, ctypes.py_object(exc_type))
        if done != 1:
            if done:
                _set_async_exc(thread, None)
            return False
        if _current_frames().get(ident) is not innermost:
            _set_async_exc(thread, None)  # it ran into another frame meanwhile: never a second try
            return False
        return True
    finally:
        if enabled:
            gc.enable()


_clock = time.perf_counter
_current_frames = sys._current_frames
_switch_interval = sys.getswitchinterval
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


def _real_sleep() -> Callable[[float], None]:
    """``time.sleep`` as it was before gevent patched it (this is a real thread)."""
    monkey = _modules.get("gevent.monkey")
    if monkey is not None:
        try:
            if monkey.is_module_patched("time"):
                return monkey.get_original("time", "sleep")
        except Exception:
            pass
    return time.sleep


def raise_in_thread(ident: int, exc_type: type, still: Callable[[], bool]) -> bool:
    """``PyThreadState_SetAsyncExc``, taken back at once unless ``still()``
    holds after it: the target must not have moved on meanwhile."""
    thread = ctypes.c_ulong(ident)
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, ctypes.py_object(exc_type))
    if done != 1 or not still():
        if done:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, None)
        return False
    return True


def withdraw_from(ident: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def _working_below(ident: int, frame: FrameType) -> bool:
    """The thread still runs code called from ``frame`` (a pool's work item)."""
    innermost = current_frames().get(ident)
    return innermost is not frame and frames_between(innermost, frame) is not None


def _candidates_of(owner: Any) -> Optional[dict]:
    """The owner's entry candidates, worked out on first use; None once released.

    Read and written through locals only: the watchdog calls this while the
    request's thread may be running ``release()``, which clears both fields.
    """
    candidates = owner._candidates
    if candidates is None:
        starter = owner.starter
        if starter is None:
            return None
        candidates = owner._candidates = entry_candidates(starter)
    return candidates


def _entry_index(frames: list, candidates: dict) -> Optional[int]:
    """Index of the innermost frame that may mark the span's entry."""
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        if candidates.get(id(frame)) is frame:
            return index
    return None


def _other_name(watched: Any, owner: Any) -> Optional[str]:
    span = watched.span
    return None if watched._owner is owner or span is None else span.name


def _span_name_in_context(task: Any, registry: Optional[dict], owner: Any) -> Optional[str]:
    """The span current in ``task``'s context (Python 3.12+ ``Task.get_context``);
    its watched root's name when there is one."""
    try:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        variable = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
        if variable is None:
            return None
        span = trace.get_current_span(task.get_context().get(variable))
        watched = (registry or {}).get(span.get_span_context().span_id)
        if watched is not None:
            return _other_name(watched, owner)
        return getattr(span, "name", None)
    except Exception:
        return None


def task_or_greenlet_owner(starter: Optional[FrameType], registry: Optional[dict]) -> Any:
    """The owner of a span starting now if it is an asyncio task or a greenlet;
    None for a plain thread, whose owner is made later, only if needed.

    A few C calls: the running loop (and its current task) only exist under
    asyncio; a greenlet is only asked for when greenlet is imported, and is
    the owner only when it is not its thread's main greenlet.
    """
    loop = _get_running_loop()
    if loop is not None:
        task = _current_task_of(loop)
        if task is not None:
            return TaskOwner(task, loop, get_ident(), starter, registry)
    greenlets = _modules.get("greenlet")
    if greenlets is not None:
        current = greenlets.getcurrent()
        if current.parent is not None:
            return GreenletOwner(current, get_ident(), starter)
    return None
