"""2. Against Dogslow, on the same Django app and the same requests.

Each tool's per-request overhead over its own baseline: Dogslow's
middleware over the bare app; otel-slowstack over the same app already
instrumented by OpenTelemetry. Measured with 1, 100 and 10,000 other
requests in flight, which is what the schedulers pay for: Dogslow re-sorts
a list of jobs on every request and rebuilds it on every response;
otel-slowstack appends to a FIFO and forgets.
"""

from __future__ import annotations

import gc
import io
import os
import sys
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app")
warnings.simplefilter("ignore", DeprecationWarning)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from common import emit, paired  # noqa: E402
from otel_slowstack import SlowStackProcessor  # noqa: E402

ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/orders/7", "QUERY_STRING": "", "SERVER_NAME": "bench",
    "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
    "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
}


class NoopExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def handler(middleware: list) -> WSGIHandler:
    settings.MIDDLEWARE = list(middleware)
    return WSGIHandler()


def request(app: WSGIHandler):
    def start_response(status, headers, exc_info=None):
        return None

    def run():
        env = dict(ENVIRON)
        env["wsgi.input"] = io.BytesIO()
        response = app(env, start_response)
        for _ in response:
            pass
        response.close()

    return run


def dogslow_middleware(app: WSGIHandler):
    request(app)()  # the timer thread starts on the first request
    for obj in gc.get_objects():
        if type(obj).__name__ == "WatchdogMiddleware":
            return obj
    raise RuntimeError("dogslow middleware not found")


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, number = (6, 300) if quick else (20, 1000)
    results: dict = {"dogslow": {}, "slowstack": {}}

    bare = handler([])
    with_dogslow = handler(["dogslow.WatchdogMiddleware"])
    middleware = dogslow_middleware(with_dogslow)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=1 << 16, max_export_batch_size=4096))
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument(tracer_provider=provider)
    instrumented = handler(settings.MIDDLEWARE)  # now with OpenTelemetry's middleware
    multi = provider._active_span_processor
    without = multi._span_processors
    processor = SlowStackProcessor(threshold="60s")
    with_slowstack = without + (processor,)
    tracer = provider.get_tracer("bench")

    def switch(processors):
        def run_with(fn):
            def run():
                multi._span_processors = processors
                fn()
            return run
        return run_with

    otel_base = switch(without)(request(instrumented))
    otel_cand = switch(with_slowstack)(request(instrumented))
    held = []
    for in_flight in (1, 100, 10_000):
        # Dogslow: jobs of requests still running, as its middleware schedules them.
        while len(middleware.timer._jobs) < in_flight:
            middleware.timer.run_later(lambda: None, 3600)
        results["dogslow"][in_flight] = paired(request(bare), request(with_dogslow), number, rounds)
        # otel-slowstack: watched spans still open.
        multi._span_processors = with_slowstack
        while len(held) < in_flight:
            held.append(tracer.start_span("GET /held", kind=SpanKind.SERVER))
        results["slowstack"][in_flight] = paired(otel_base, otel_cand, number, rounds)
    for span in held:
        span.end()
    provider.shutdown()
    emit({"dogslow_compare": results})


if __name__ == "__main__":
    main()
