"""Private parts of other libraries that otel-slowstack relies on, in one place.

Each is read defensively, with a public fallback, and was checked against
the versions named. A new release that changes one loses a speed-up or a
detail, never the application.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, set_span_in_context


def _span_context_is_a_tuple() -> bool:
    """API 1.27-1.45: ``SpanContext`` is the tuple (trace_id, span_id, is_remote, ...).
    The hot path indexes it (``[1]``, ``[2]``), several times cheaper than its properties."""
    try:
        context = SpanContext(trace_id=7, span_id=9, is_remote=True)
        return isinstance(context, tuple) and context[1] == 9 and context[2] is True
    except Exception:
        return False


SPAN_CONTEXT_IS_A_TUPLE = _span_context_is_a_tuple()


def _span_fields_readable() -> bool:
    """SDK 1.27-1.45: a span's ``parent``, ``context``, ``kind``, ``start_time``
    and ``end_time`` properties return the fields ``_parent``, ``_context``,
    ``_kind``, ``_start_time``, ``_end_time``, and its attributes are a
    ``BoundedAttributes`` whose ``_dict`` is a plain dict. The hot path reads
    the fields: each property is a Python call, several on every span."""
    try:
        provider = TracerProvider(shutdown_on_exit=False)
        tracer = provider.get_tracer("otel_slowstack.probe")
        parent = tracer.start_span("parent")
        span = tracer.start_span("probe", context=set_span_in_context(parent), attributes={"a": 1})
        span.end()
        parent.end()
        provider.shutdown()
        return (
            span._parent is span.parent and span._context is span.context and span._kind is span.kind
            and span._start_time == span.start_time and span._end_time == span.end_time
            and type(span._attributes._dict) is dict and span._attributes._dict.get("a") == 1
        )
    except Exception:
        return False


SPAN_FIELDS_READABLE = _span_fields_readable()


def _sdk_calls_on_ending() -> bool:
    """Whether ``Span.end()`` calls ``SpanProcessor._on_ending(span)`` before ``on_end``.

    SDK 1.45: yes, with the live span, its end time set and its attributes
    frozen. Found out by trying, not by version, on a provider of our own.
    """
    seen: list = []

    class Probe(SpanProcessor):
        def _on_ending(self, span: Any) -> None:
            seen.append(span)

    try:
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(Probe())
        provider.get_tracer("otel_slowstack.probe").start_span("probe").end()
        provider.shutdown()
    except Exception:
        return False
    return len(seen) == 1 and hasattr(seen[0], "_attributes")


#: SDK 1.45: ``_on_ending`` lets the totals be written once, as the span ends.
SDK_CALLS_ON_ENDING = _sdk_calls_on_ending()


def set_attributes_while_ending(span: Any, values: dict) -> bool:
    """Add attributes to a span inside ``_on_ending``, where ``set_attributes``
    would refuse (its end time is set).

    Written into the SDK's ``BoundedAttributes`` (SDK 1.27-1.45: ``_dict``
    under ``_lock``, ``maxlen``, ``dropped``) directly: the values are plain
    numbers, so the SDK's cleaning has nothing to do. At the span's attribute
    limit ours are the ones dropped, never the application's.
    """
    attributes = getattr(span, "_attributes", None)
    plain = getattr(attributes, "_dict", None)
    lock = getattr(attributes, "_lock", None)
    if plain is None or lock is None:
        return False
    maxlen = getattr(attributes, "maxlen", None)
    with lock:
        for key, value in values.items():
            if key in plain or maxlen is None or len(plain) < maxlen:
                plain[key] = value
            else:
                attributes.dropped += 1
    return True


# -- the SDK's provider, as snapshots and the way down reach it -----------------
# Checked against opentelemetry-sdk 1.45.1. Read with getattr: a provider or
# span that lacks one is treated as "not an SDK one" (no snapshots through it).


def active_span_processor(provider: Any) -> Any:
    """``TracerProvider._active_span_processor``: the multi-processor spans report to."""
    return getattr(provider, "_active_span_processor", None)


def span_processor_of(span: Any) -> Any:
    """``Span._span_processor``: the provider's multi-processor that made ``span``."""
    return getattr(span, "_span_processor", None)


def exporters_of(provider: Any) -> list:
    """The exporters behind an SDK provider's processors, each once.

    ``SynchronousMultiSpanProcessor._span_processors`` (and the concurrent
    one's) lists the processors; ``SimpleSpanProcessor`` and
    ``BatchSpanProcessor`` both expose ``span_exporter``. Processors without
    one are not reached.
    """
    found: list = []
    for processor in getattr(active_span_processor(provider), "_span_processors", ()):
        exporter = getattr(processor, "span_exporter", None)
        if exporter is not None and all(exporter is not e for e in found):
            found.append(exporter)
    return found


# -- servers whose signal handling is chained into (lifecycle/) ----------------
# Each a (module, "Class.method") wrapped with wrapt once the module is
# imported; a version without it is left alone (``import_hooks.wrap_once``).

#: gunicorn 27.0.1: each worker resets every signal and installs its own here,
#: right after the fork.
GUNICORN_WORKER_INIT_SIGNALS = ("gunicorn.workers.base", "Worker.init_signals")
#: uvicorn 0.54.0: SIGINT's and SIGTERM's only handler while it serves.
UVICORN_HANDLE_EXIT = ("uvicorn.server", "Server.handle_exit")
#: Celery 5.7.0: the worker sets its signal handlers here when it starts.
CELERY_PLATFORM_TWEAKS = ("celery.apps.worker", "Worker.install_platform_tweaks")
#: Celery 5.7.0: the module holding ``worker_process_init`` (a public signal).
CELERY_SIGNALS = "celery.signals"
#: Celery 5.7.0: the result backend's ``Backend`` and the methods that store a
#: task's outcome after the task returned.
CELERY_BACKEND = "celery.backends.base"
CELERY_BACKEND_METHODS = tuple(
    f"Backend.{name}" for name in ("mark_as_done", "mark_as_failure", "mark_as_retry", "mark_as_revoked")
)
#: billiard 4.3.2: a pool child resets its signals in ``Worker.after_fork``,
#: after the pool's initializer has sent ``worker_process_init``.
BILLIARD_AFTER_FORK = ("billiard.pool", "Worker.after_fork")


def is_billiard_exit(handler: Any) -> bool:
    """billiard 4.3.2: ``billiard.common._shutdown_cleanup``, the handler that exits
    a pool child on SIGTERM and SIGQUIT (recognised by name: never imported here)."""
    return getattr(handler, "__name__", "") == "_shutdown_cleanup" and "billiard" in str(
        getattr(handler, "__module__", "")
    )


# =============================================================================
# capture/: the interpreter, asyncio, greenlet and gevent
# =============================================================================
#
# What ``otel_slowstack.capture`` reads of other threads, tasks and greenlets
# that no public API offers. Checked against CPython 3.11.7 (and the 3.8-3.13
# layouts where noted), greenlet 3.5.6, gevent 26.9.0, anyio 4.16.0 and
# opentelemetry-api 1.45.1. Names are bound once at import: the per-span paths
# call them directly, with no layer in between.

import asyncio as _asyncio
import ctypes as _ctypes
import sys as _sys
import threading as _threading
from asyncio import futures as _asyncio_futures
from asyncio import tasks as _asyncio_tasks
from operator import attrgetter as _attrgetter
from types import BuiltinFunctionType as _BuiltinFunctionType
from typing import Callable as _Callable
from typing import Optional as _Optional

#: Every thread's innermost frame by ident. CPython 3.x; the only way to read
#: another thread's stack (``capture.frames.current_frames`` guards it after fork).
current_frames: _Callable[[], dict] = _sys._current_frames
#: The caller's frame ``depth`` levels up. CPython 3.x.
get_frame = _sys._getframe
#: ``PyThreadState_SetAsyncExc(thread_id, exc_type or NULL)``: raise in another
#: thread at its next bytecode; returns how many thread states matched. The C
#: API since 2.3; the id is an ``unsigned long`` since 3.7.
set_async_exc = _ctypes.pythonapi.PyThreadState_SetAsyncExc

#: The loop running on this thread, or None (never raises, unlike the public
#: ``get_running_loop``): asyncio 3.7-3.13, C-accelerated.
get_running_loop = _asyncio._get_running_loop


def _current_task_reader() -> _Callable:
    """``current_task(loop)`` at C speed. 3.12+: ``current_task`` is C itself;
    3.11: a Python function over the C dict ``asyncio.tasks._current_tasks``
    (loop -> task), whose ``get`` is safe from any thread."""
    current = _asyncio.current_task
    tasks_by_loop = getattr(_asyncio_tasks, "_current_tasks", None)
    if isinstance(current, _BuiltinFunctionType) or not isinstance(tasks_by_loop, dict):
        return current
    return tasks_by_loop.get


#: The task holding ``loop`` right now, or None (any thread may ask).
current_task_of: _Callable = _current_task_reader()
#: asyncio's pure-Python future and task classes besides the C ones (3.7-3.13):
#: objects of either may be awaited.
FUTURE_TYPES: tuple = tuple({_asyncio.Future, getattr(_asyncio_futures, "_PyFuture", _asyncio.Future)})
TASK_TYPES: tuple = tuple({_asyncio.Task, getattr(_asyncio_tasks, "_PyTask", _asyncio.Task)})
#: A future's ``_state`` string, read without a method call: asyncio's
#: ``"PENDING"``/``"CANCELLED"``/``"FINISHED"`` (3.7-3.13) and
#: ``concurrent.futures``' ``"PENDING"``/``"RUNNING"``/... (whose ``done()``
#: would take the future's lock).
future_state: _Callable = _attrgetter("_state")


def future_callbacks(future: Any) -> list:
    """A pending asyncio future's done-callbacks, as ``(callback, context)``
    tuples (3.10-3.13; bare callbacks before): ``_callbacks``."""
    return list(getattr(future, "_callbacks", None) or ())


def gathering_children(future: Any) -> _Optional[list]:
    """The children of a ``gather`` (its ``_GatheringFuture``'s ``_children``,
    3.7-3.13), or None for any other future."""
    if type(future).__name__ != "_GatheringFuture":
        return None
    return list(getattr(future, "_children", None) or ())


def is_task_wakeup(callback: Any, methods: tuple) -> bool:
    """A task's own wake-up callback: a bound method (3.10+), or Python 3.9's
    C ``TaskWakeupMethWrapper``."""
    kind = type(callback)
    return kind in methods or kind.__name__ == "TaskWakeupMethWrapper"


#: Type names of the C iterators an ``await`` may hold whose only interesting
#: referent is the awaitable they wrap (3.8-3.13).
AWAIT_WRAPPERS = frozenset(
    {"FutureIter", "coroutine_wrapper", "async_generator_asend", "async_generator_athrow", "anext_awaitable"}
)
#: Task groups whose pending tasks (``_tasks``, a set) a request may wait on
#: without a link from the awaited future: asyncio 3.11-3.13 and anyio 4.x.
_TASK_GROUPS = (("asyncio.taskgroups", "TaskGroup"), ("anyio._backends._asyncio", "TaskGroup"))


def task_group_types() -> tuple:
    """The task group classes loaded so far."""
    found = []
    for module, name in _TASK_GROUPS:
        kind = getattr(_sys.modules.get(module), name, None)
        if isinstance(kind, type):
            found.append(kind)
    return tuple(found)


def task_group_tasks(group: Any) -> Any:
    return getattr(group, "_tasks", None) or ()


def context_variable() -> Any:
    """The ``ContextVar`` behind OpenTelemetry's current context
    (``opentelemetry.context._RUNTIME_CONTEXT._current_context``, API
    1.27-1.45, with the default contextvars runtime), or None."""
    try:
        from opentelemetry import context as otel_context
    except Exception:
        return None
    return getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)


#: A switched-out greenlet's innermost frame, None while it runs (greenlet
#: 0.4-3.5: ``gr_frame``).
greenlet_frame: _Callable = _attrgetter("gr_frame")


def live_threads() -> dict:
    """``threading._active`` (ident -> Thread), what ``enumerate()`` copies
    (3.x), looked up afresh each time: gevent's monkey-patching rebinds it."""
    return getattr(_threading, "_active", None) or {}


def start_span_code() -> Any:
    """``Tracer.start_span``'s code object in the SDK (1.27-1.45): on_start's
    caller three frames up on the SDK's usual path; None on another layout."""
    try:
        from opentelemetry.sdk.trace import Tracer

        return Tracer.start_span.__code__
    except Exception:
        return None
