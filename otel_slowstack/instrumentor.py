"""``SlowStackInstrumentor``: adds the processor under ``opentelemetry-instrument``.

Usage::

    pip install otel-slowstack
    opentelemetry-instrument gunicorn app:app     # enabled, nothing else to do
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=slowstack opentelemetry-instrument ...   # disabled

or by hand: ``SlowStackInstrumentor().instrument(tracer_provider=provider)``.

It only wires things up, and never raises: an exception escaping an
instrumentor makes ``opentelemetry-instrument`` skip every later one.

``instrument()`` installs the process hooks (``lifecycle/process_hooks.py``:
exit, signals, the servers' patches, a log filter) unless given
``process_hooks=False``; and, while no SDK provider is set, wraps
``trace.set_tracer_provider`` to attach to the one the application sets.
``uninstrument()`` takes back both (the hooks once nothing else holds them)
and shuts its processor down (an SDK provider cannot drop a processor).
"""

from __future__ import annotations

import logging
from typing import Any, Collection, Optional

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_slowstack import failures
from otel_slowstack.lifecycle import process_hooks
from otel_slowstack.processor import SlowStackProcessor

_logger = logging.getLogger("otel_slowstack")


class SlowStackInstrumentor(BaseInstrumentor):
    """Adds a ``SlowStackProcessor`` to the SDK tracer provider."""

    _processor: Optional[SlowStackProcessor] = None
    _waiting_for_provider = False
    #: ``trace.set_tracer_provider`` as it was before we wrapped it, and our
    #: wrapper, while wrapped (inert once uninstrumented, if it cannot be taken out).
    _original_set_tracer_provider: Optional[Any] = None
    _wrapper: Optional[Any] = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        try:
            if kwargs.get("process_hooks", True):
                process_hooks.install(self)
            provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
            if hasattr(provider, "add_span_processor"):
                self._attach(provider)
            else:
                self._attach_when_set()
        except Exception:
            failures.report_current("could not instrument; the application runs without it")

    def _attach(self, provider: Any) -> None:
        processor = SlowStackProcessor(tracer_provider=provider, process_hooks=False)  # ours, if any, are in
        provider.add_span_processor(processor)
        type(self)._processor = processor

    def _attach_when_set(self) -> None:
        """No SDK provider yet: say so once, and attach if the application sets one later."""
        _logger.warning(
            "otel-slowstack: the global tracer provider is not an SDK TracerProvider, "
            "so slow spans cannot be watched yet. Install opentelemetry-distro (or "
            "another configurator) for opentelemetry-instrument, or call "
            "trace.set_tracer_provider(TracerProvider()) in the application; "
            "otel-slowstack attaches as soon as one is set."
        )
        if SlowStackInstrumentor._waiting_for_provider:
            return
        SlowStackInstrumentor._waiting_for_provider = True
        original = SlowStackInstrumentor._original_set_tracer_provider = trace.set_tracer_provider

        def set_tracer_provider(tracer_provider: Any) -> None:
            original(tracer_provider)
            try:
                if (
                    SlowStackInstrumentor._processor is None
                    and self.is_instrumented_by_opentelemetry
                    and trace.get_tracer_provider() is tracer_provider
                    and hasattr(tracer_provider, "add_span_processor")
                ):
                    self._attach(tracer_provider)
                    _logger.info("otel-slowstack: attached to the tracer provider set by the application")
            except Exception:
                failures.report_current("could not attach to the new tracer provider")

        SlowStackInstrumentor._wrapper = set_tracer_provider
        trace.set_tracer_provider = set_tracer_provider

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            processor = type(self)._processor
            type(self)._processor = None
            if processor is not None:
                processor.shutdown()  # an SDK provider cannot drop a processor; make it inert
            self._stop_waiting_for_provider()
            process_hooks.uninstall(self)
        except Exception:
            failures.report_current("could not uninstrument")

    def _stop_waiting_for_provider(self) -> None:
        """Put ``trace.set_tracer_provider`` back, unless someone wrapped it after us."""
        original = SlowStackInstrumentor._original_set_tracer_provider
        if original is not None and trace.set_tracer_provider is SlowStackInstrumentor._wrapper:
            trace.set_tracer_provider = original
            SlowStackInstrumentor._original_set_tracer_provider = SlowStackInstrumentor._wrapper = None
            SlowStackInstrumentor._waiting_for_provider = False
