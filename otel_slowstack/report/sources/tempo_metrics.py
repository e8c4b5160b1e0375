"""Whole-window totals per route from Grafana Tempo's TraceQL metrics API.

The traces fetched from Tempo are the ones with otel-slowstack samples, a
biased few; the ranking of routes by worker time wants every server and
consumer span of the window. Tempo's instant metrics API
(``/api/metrics/query``, Tempo 2.8 and later) answers that in three small
queries grouped by route and method: ``count_over_time()``,
``sum_over_time(duration)`` and ``quantile_over_time(duration, .5, .95,
.99)``. Durations come back in seconds. A Tempo without the API, or one
that refuses a query, gives ``None``: the ranking then covers the traces
fetched, and the report's header says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from otel_slowstack.conventions import HTTP_METHOD, HTTP_REQUEST_METHOD, HTTP_ROUTE, SERVICE_NAME

from ..errors import ReportError
from . import otlp_json

#: TraceQL names span attributes with the scope ``span.``.
ROUTE, METHOD, OLD_METHOD = f"span.{HTTP_ROUTE}", f"span.{HTTP_REQUEST_METHOD}", f"span.{HTTP_METHOD}"
BY = f" by ({ROUTE}, {METHOD}, {OLD_METHOD})"
NO_ROUTE = "(spans without http.route)"


@dataclass
class WindowTotals:
    """One route over the whole window, as Tempo counted it."""

    count: int = 0
    total_ms: float = 0.0
    p50_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    p99_ms: Optional[float] = None


def spanset(service: Optional[str]) -> str:
    condition = "(kind = server || kind = consumer)"
    if service:
        quoted = service.replace("\\", "\\\\").replace('"', '\\"')
        condition = f'resource.{SERVICE_NAME} = "{quoted}" && {condition}'
    return f"{{ {condition} }}"


def _route(labels: dict) -> str:
    route, method = labels.get(ROUTE), labels.get(METHOD) or labels.get(OLD_METHOD)
    if not isinstance(route, str) or not route:
        return NO_ROUTE
    return f"{method} {route}" if isinstance(method, str) and method else route


def _series(body) -> Optional[list]:
    series = body.get("series") if isinstance(body, dict) else None
    if series is None and isinstance(body, dict) and ("metrics" in body or body == {}):
        return []
    return series if isinstance(series, list) else None


def _value(entry: dict) -> Optional[float]:
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def window_totals(client, service: Optional[str], start_s: int, end_s: int) -> Optional[dict]:
    """route -> ``WindowTotals`` for the window, or None when this Tempo cannot say."""
    base = spanset(service)
    answers = {}
    for name, pipeline in (("count", "count_over_time()"), ("sum", "sum_over_time(duration)"),
                           ("quantiles", "quantile_over_time(duration, .5, .95, .99)")):
        try:
            body = client.get_json("/api/metrics/query", {"q": f"{base} | {pipeline}{BY}", "start": start_s, "end": end_s})
        except ReportError:
            return None  # no metrics API (404), metrics not enabled (400), ...
        series = _series(body)
        if series is None:
            return None
        answers[name] = series
    totals: dict = {}
    for name, series in answers.items():
        for entry in series:
            if not isinstance(entry, dict):
                continue
            labels = otlp_json.attributes(entry.get("labels"))
            value = _value(entry)
            if value is None:
                continue
            stats = totals.setdefault(_route(labels), WindowTotals())
            if name == "count":
                stats.count += int(value)
            elif name == "sum":
                stats.total_ms += value * 1000.0
            else:
                quantile = labels.get("p")
                field = {0.5: "p50_ms", 0.95: "p95_ms", 0.99: "p99_ms"}.get(round(quantile, 2) if isinstance(quantile, float) else None)
                if field:
                    setattr(stats, field, value * 1000.0)
    return {route: stats for route, stats in totals.items() if stats.count}
