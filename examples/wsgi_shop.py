"""A bare WSGI app. No framework instrumentation exists for it, so it wraps
itself in OpenTelemetry's WSGI middleware, as any bare WSGI app does.

    opentelemetry-instrument gunicorn --chdir examples wsgi_shop:app
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware


def shop(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("PATH_INFO") == "/report":
        slow_upstream(float(query.get("seconds", ["3"])[0]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def slow_upstream(seconds: float) -> None:
    time.sleep(seconds)


app = OpenTelemetryMiddleware(shop)
