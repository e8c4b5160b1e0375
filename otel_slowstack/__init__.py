"""otel-slowstack: the stacks of slow requests, as OpenTelemetry span events.

``SlowStackProcessor`` is an SDK span processor: add it to any
``TracerProvider``. ``SlowStackInstrumentor`` adds it for you under
``opentelemetry-instrument`` (entry point name ``slowstack``).
``SlowRequestInterrupted`` is raised inside a request that runs past
``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER``.
"""

from otel_slowstack.instrumentor import SlowStackInstrumentor
from otel_slowstack.lifecycle.interrupt import SlowRequestInterrupted
from otel_slowstack.processor import SlowStackProcessor
from otel_slowstack.version import __version__

__all__ = [
    "SlowStackProcessor",
    "SlowStackInstrumentor",
    "SlowRequestInterrupted",
    "__version__",
]
