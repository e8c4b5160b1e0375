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
