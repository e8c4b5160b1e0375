"""Private parts of other libraries that otel-slowstack relies on, in one place.

Each is read defensively, with a public fallback, and was checked against
the versions named. A new release that changes one loses a speed-up or a
detail, never the application.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext


def _span_context_is_a_tuple() -> bool:
    """API 1.27-1.45: ``SpanContext`` is the tuple (trace_id, span_id, is_remote, ...).
    The hot path indexes it (``[1]``, ``[2]``), several times cheaper than its properties."""
    try:
        context = SpanContext(trace_id=7, span_id=9, is_remote=True)
        return isinstance(context, tuple) and context[1] == 9 and context[2] is True
    except Exception:
        return False


SPAN_CONTEXT_IS_A_TUPLE = _span_context_is_a_tuple()


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
