"""Private parts of other libraries that otel-slowstack relies on, in one place.

Each is read defensively, with a public fallback, and was checked against
the versions named. A new release that changes one loses a speed-up or a
detail, never the application.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


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
    """Add attributes to a span inside ``_on_ending``: its end time is set, so
    ``set_attributes`` would refuse; its ``BoundedAttributes`` (SDK 1.27-1.45:
    ``_immutable``) is opened for just these writes, which keep its limits."""
    attributes = getattr(span, "_attributes", None)
    if attributes is None or not hasattr(attributes, "_immutable"):
        return False
    attributes._immutable = False
    try:
        for key, value in values.items():
            attributes[key] = value
    finally:
        attributes._immutable = True
    return True
