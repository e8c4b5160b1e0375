"""An in-process SDK with an in-memory exporter and a ``SlowStackProcessor``.

Tests get one from the ``make_sdk`` fixture (``conftest.py``), which shuts
down every one it made; read samples with ``support.spans``. Only the
package's own dependencies are needed: pure unit tests may use it.
"""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_slowstack import SlowStackProcessor


class Sdk:
    """A provider (not the global one), its exporter, our processor and a tracer."""

    def __init__(self, span_limits: Optional[SpanLimits] = None, **settings: Any) -> None:
        self.exporter = InMemorySpanExporter()
        # shutdown_on_exit=False: the SDK's atexit hook would otherwise keep the
        # provider, and so the processor, alive for good.
        self.provider = TracerProvider(span_limits=span_limits, shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.processor = SlowStackProcessor(tracer_provider=self.provider, **settings)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("test")

    def finished(self, name: str) -> Any:
        (span,) = [s for s in self.exporter.get_finished_spans() if s.name == name]
        return span

    def shutdown(self) -> None:
        self.provider.shutdown()

