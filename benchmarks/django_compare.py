"""2. The same Django request four ways, and Dogslow against otel-slowstack.

One Django app, one view, requests driven in process through Django's WSGI
handler. Four variants alternate round by round:

- bare: the app alone;
- Dogslow: the app with Dogslow's middleware;
- OTel: the app with OpenTelemetry's Django instrumentation (SDK, one
  BatchSpanProcessor, no-op exporter);
- OTel + otel-slowstack: the same with ``SlowStackProcessor`` added;
- OTel + Dogslow: the instrumented app with Dogslow's middleware added.

Every variant is reported as µs added per request over the same bare
request. What each tool adds by itself, over the same base: otel-slowstack
and Dogslow each over the OTel-instrumented app (what a user who already
traces pays to add either); Dogslow over the bare app is shown too. With 1, 100 and 10,000 requests in flight: the
measured one plus others still running (Dogslow: jobs in its timer, as its
middleware schedules them; otel-slowstack: watched spans open).
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
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from common import NoopExporter, added, alternate, emit, quick_run  # noqa: E402
from otel_slowstack import SlowStackProcessor  # noqa: E402

ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/orders/7", "QUERY_STRING": "", "SERVER_NAME": "bench",
    "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
    "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
}


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


def dogslow_timers(*apps: WSGIHandler) -> list:
    """The timers of Dogslow's middleware in these apps (each started by a first request)."""
    for app in apps:
        request(app)()
    timers = {
        id(obj.timer): obj.timer
        for obj in gc.get_objects()
        if type(obj).__name__ == "WatchdogMiddleware" and obj.timer is not None
    }
    if len(timers) < len(apps):
        raise RuntimeError(f"{len(timers)} Dogslow timers running for {len(apps)} apps")
    return list(timers.values())


def main() -> None:
    quick = quick_run(__doc__)
    rounds, number = (24, 50) if quick else (90, 170)  # many short rounds: see hot_path.py

    bare = handler([])
    with_dogslow = handler(["dogslow.WatchdogMiddleware"])

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=1 << 16, max_export_batch_size=4096))
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    # The instrumentor inserts its middleware into the current setting, which
    # ``handler`` last set to Dogslow's: start it from the app's own (none).
    settings.MIDDLEWARE = []
    DjangoInstrumentor().instrument(tracer_provider=provider)
    instrumented = handler(settings.MIDDLEWARE)  # now with OpenTelemetry's middleware
    instrumented_dogslow = handler(settings.MIDDLEWARE + ["dogslow.WatchdogMiddleware"])
    timers = dogslow_timers(with_dogslow, instrumented_dogslow)
    # Adding and removing the processor between rounds: the SDK's list of
    # processors, swapped in every variant alike so the swap costs all the same.
    multi = provider._active_span_processor
    sdk_only = multi._span_processors
    with_ours = sdk_only + (SlowStackProcessor(threshold="600s"),)

    def variant(app, processors):
        run = request(app)

        def go():
            multi._span_processors = processors
            run()
        return go

    variants = {
        "bare": variant(bare, sdk_only),
        "dogslow": variant(with_dogslow, sdk_only),
        "otel": variant(instrumented, sdk_only),
        "otel+ours": variant(instrumented, with_ours),
        "otel+dogslow": variant(instrumented_dogslow, sdk_only),
    }
    tracer = provider.get_tracer("bench")
    held: list = []
    results: dict = {}
    for in_flight in (1, 100, 10_000):
        others = in_flight - 1
        for timer in timers:
            while len(timer._jobs) < others:
                timer.run_later(lambda: None, 3600)
        multi._span_processors = with_ours
        while len(held) < others:
            held.append(tracer.start_span("GET /held", kind=SpanKind.SERVER))
        r = alternate(variants, number, rounds)
        results[str(in_flight)] = {
            "dogslow_over_bare": added(r, "bare", "dogslow"),
            "otel_over_bare": added(r, "bare", "otel"),
            "otel_ours_over_bare": added(r, "bare", "otel+ours"),
            "otel_dogslow_over_bare": added(r, "bare", "otel+dogslow"),
            "ours_over_otel": added(r, "otel", "otel+ours"),
            "dogslow_over_otel": added(r, "otel", "otel+dogslow"),
            # Round by round, the two tools over the same instrumented app: below zero, ours is lower.
            "ours_minus_dogslow": added(r, "otel+dogslow", "otel+ours"),
        }
    multi._span_processors = with_ours
    for span in held:
        span.end()
    provider.shutdown()
    emit({"django_compare": results})


if __name__ == "__main__":
    main()
