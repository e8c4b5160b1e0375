"""7. What other per-request tools cost on the same Django app, measured the same way.

Labelled as what they do, which is not what otel-slowstack does:

- Sentry's SDK with its Django integration and performance tracing on
  (``traces_sample_rate=1.0``; a transport that drops every envelope). Its
  patches stay in place once installed, so its base is the same app with
  Sentry's client switched off.
- pyinstrument's profiler middleware profiling every request
  (``PYINSTRUMENT_PROFILE_DIR`` set, JSON report per request to a temporary
  directory), over the bare app.

Same app, same request, same method as ``django_compare.py``: variants
alternating over rounds, process CPU time, µs added per request.
"""

from __future__ import annotations

import os
import tempfile
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app")
warnings.simplefilter("ignore", DeprecationWarning)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

django.setup()

from common import added, alternate, emit, quick_run  # noqa: E402
from django_compare import handler, request  # noqa: E402


def pyinstrument_cost(number: int, rounds: int, directory: str) -> dict:
    settings.PYINSTRUMENT_PROFILE_DIR = directory
    settings.PYINSTRUMENT_PROFILE_DIR_RENDERER = "pyinstrument.renderers.JSONRenderer"
    bare = handler([])
    profiled = handler(["pyinstrument.middleware.ProfilerMiddleware"])
    r = alternate({"bare": request(bare), "pyinstrument": request(profiled)}, number, rounds, warmup=20)
    return added(r, "bare", "pyinstrument")


def sentry_cost(number: int, rounds: int) -> dict:
    import sentry_sdk
    from sentry_sdk.client import NonRecordingClient
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.transport import Transport

    class DropTransport(Transport):
        def capture_envelope(self, envelope) -> None:
            pass

    sentry_sdk.init(
        dsn="https://public@o0.ingest.example.invalid/1",
        transport=DropTransport,
        traces_sample_rate=1.0,
        integrations=[DjangoIntegration()],
    )
    on = sentry_sdk.get_client()
    assert on.is_active(), "Sentry's client did not start"
    off = NonRecordingClient()
    scope = sentry_sdk.get_global_scope()
    app = request(handler([]))

    def with_client(client):
        def run():
            scope.set_client(client)
            app()
        return run

    r = alternate({"off": with_client(off), "sentry": with_client(on)}, number, rounds, warmup=50)
    scope.set_client(on)
    sentry_sdk.flush(2)
    return added(r, "off", "sentry")


def main() -> None:
    quick = quick_run(__doc__)
    rounds, number = (12, 50) if quick else (60, 100)
    results: dict = {}
    try:
        with tempfile.TemporaryDirectory() as directory:
            results["pyinstrument"] = pyinstrument_cost(max(20, number // 5), rounds, directory)
    except ImportError as exc:
        results["pyinstrument"] = {"unavailable": str(exc)}
    try:
        results["sentry"] = sentry_cost(number, rounds)
    except ImportError as exc:
        results["sentry"] = {"unavailable": str(exc)}
    emit({"peers": results})


if __name__ == "__main__":
    main()
