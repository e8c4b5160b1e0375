"""otel-slowstack: the stacks of slow requests, as OpenTelemetry span events.

``SlowStackProcessor`` is an SDK span processor: add it to any
``TracerProvider``. ``SlowStackInstrumentor`` adds it for you under
``opentelemetry-instrument`` (entry point name ``slowstack``).
``SlowRequestInterrupted`` is raised inside a request that runs past
``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER``.
"""

from .instrumentor import SlowStackInstrumentor
from .interrupt import SlowRequestInterrupted
from .processor import SlowStackProcessor
from .version import __version__

__all__ = [
    "SlowStackProcessor",
    "SlowStackInstrumentor",
    "SlowRequestInterrupted",
    "__version__",
]
