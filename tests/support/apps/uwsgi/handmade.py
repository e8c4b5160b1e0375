"""The shop with tracing set up by hand in the application, loaded in each
worker (``--lazy-apps``): otel-slowstack is first imported in the worker.

With ``HANDMADE_THREAD_FIRST=1`` the app starts a thread before importing it,
so Python's after-fork cleanup can no longer run safely there.
"""

import os
import threading
import time

if os.environ.get("HANDMADE_THREAD_FIRST"):
    threading.Thread(target=lambda: time.sleep(3600), name="early", daemon=True).start()

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

from otel_slowstack import SlowStackProcessor  # noqa: E402
from shop import app as shop  # noqa: E402

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
provider.add_span_processor(SlowStackProcessor(tracer_provider=provider))
trace.set_tracer_provider(provider)
app = OpenTelemetryMiddleware(shop.wsgi_app, tracer_provider=provider)
