"""Samples and N+1 findings as plain data, read from a span's events.

A ``Sample`` is one ``slowstack.sample`` event: where the span's code was
(``frames``, parsed from ``code.stacktrace``) and what surrounded it (CPU
ratio, the call in flight, client-call counters). An ``NPlusOne`` is one
``slowstack.n_plus_one`` event. Both carry the route and ids of the span
they were recorded on, so everything after this stage works on these two
types alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from otel_slowstack.routes import route_key
from .sources.record import SpanRecord
from .stacks import parse_stack

SAMPLE_EVENT = "slowstack.sample"
N_PLUS_ONE_EVENT = "slowstack.n_plus_one"
SNAPSHOT_SPAN = "slowstack.snapshot"

_IN_FLIGHT = re.compile(r"\A(?P<name>.*?)\s*\((?P<ms>\d+(?:\.\d+)?) ?ms\)\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Sample:
    route: str
    service: str
    trace_id: str
    span_id: str
    frames: tuple  # of stacks.Frame, outermost first
    trigger: str = ""
    index: int = 0
    elapsed_ms: Optional[float] = None
    cpu_ratio: Optional[float] = None
    in_flight: Optional[str] = None
    db_count: int = 0
    db_duration_ms: float = 0.0
    http_count: int = 0
    http_duration_ms: float = 0.0
    thread_name: str = ""
    loop_blocked_by: Optional[str] = None


@dataclass(frozen=True)
class NPlusOne:
    route: str
    service: str
    trace_id: str
    span_id: str
    statement: str
    count: int
    frames: tuple


def route_of(span: SpanRecord) -> str:
    """``GET /orders/{id}``: method and route, else URL path, else span name."""
    key = route_key(span.attributes, span.name)
    if key == span.name:
        return span.name
    method = span.attribute("http.request.method", "http.method")
    if isinstance(method, str) and method and not key.startswith(method + " "):
        return f"{method} {key}"
    return key


#: What a snapshot span says about the span it watched (set by newer versions).
SUBJECT = "slowstack.subject"
_SUBJECT_PREFIX = SUBJECT + "."


def snapshot_route(span: SpanRecord) -> Optional[str]:
    """The route of the request a snapshot span sampled, from its
    ``slowstack.subject.*`` attributes; None when it does not say (older data)."""
    attributes = {
        key[len(_SUBJECT_PREFIX):]: value
        for key, value in span.attributes.items()
        if key.startswith(_SUBJECT_PREFIX) and isinstance(value, str) and value
    }
    name = _text(span.attributes.get(SUBJECT))
    task = attributes.get("celery.task_name")
    if task and not any(k in attributes for k in ("http.route", "url.path")):
        return task
    if not attributes and not name:
        return None
    subject = SpanRecord("", "", "", name or "", "", 0, 0, attributes)
    route = route_of(subject)
    if route:
        return route
    destination = attributes.get("messaging.destination.name")
    return destination or None


def in_flight_parts(text: Optional[str]) -> tuple:
    """``"SELECT orders (4210 ms)"`` -> ``("SELECT orders", 4210.0)``; no age -> ``(text, None)``."""
    if not text:
        return ("", None)
    match = _IN_FLIGHT.match(text)
    if not match:
        return (text.strip(), None)
    return (match.group("name"), float(match.group("ms")))


def _number(value: Any, kind: type) -> Any:
    """A finite number of ``kind``, else None: input comes from anywhere (``nan``, ``1e400``, ``"x"``)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
        if not math.isfinite(number):
            return None
        return kind(number) if kind is not int else int(number)
    except (TypeError, ValueError, OverflowError):
        return None


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def samples_of(span: SpanRecord, route: Optional[str] = None) -> list:
    """Every ``slowstack.sample`` event of the span, in recorded order."""
    result = []
    for event in span.events:
        if event.name != SAMPLE_EVENT:
            continue
        a = event.attributes
        frames = parse_stack(a.get("code.stacktrace") if isinstance(a.get("code.stacktrace"), str) else None)
        result.append(
            Sample(
                route=route if route is not None else route_of(span),
                service=span.service,
                trace_id=span.trace_id,
                span_id=span.span_id,
                frames=frames,
                trigger=_text(a.get("slowstack.trigger")) or "",
                index=_number(a.get("slowstack.sample.index"), int) or 0,
                elapsed_ms=_number(a.get("slowstack.elapsed_ms"), float),
                cpu_ratio=_number(a.get("slowstack.cpu_ratio"), float),
                in_flight=_text(a.get("slowstack.in_flight")),
                db_count=_number(a.get("slowstack.db.count"), int) or 0,
                db_duration_ms=_number(a.get("slowstack.db.duration_ms"), float) or 0.0,
                http_count=_number(a.get("slowstack.http.count"), int) or 0,
                http_duration_ms=_number(a.get("slowstack.http.duration_ms"), float) or 0.0,
                thread_name=_text(a.get("thread.name")) or "",
                loop_blocked_by=_text(a.get("slowstack.loop_blocked_by")),
            )
        )
    return result


def n_plus_ones_of(span: SpanRecord, route: Optional[str] = None) -> list:
    """Every ``slowstack.n_plus_one`` event of the span."""
    result = []
    for event in span.events:
        if event.name != N_PLUS_ONE_EVENT:
            continue
        a = event.attributes
        statement = a.get("db.query.text") or a.get("db.statement")
        if not isinstance(statement, str) or not statement:
            continue
        stack = a.get("code.stacktrace")
        result.append(
            NPlusOne(
                route=route if route is not None else route_of(span),
                service=span.service,
                trace_id=span.trace_id,
                span_id=span.span_id,
                statement=statement,
                count=_number(a.get("slowstack.repeat.count"), int) or 0,
                frames=parse_stack(stack if isinstance(stack, str) else None),
            )
        )
    return result


def has_findings(span: SpanRecord) -> bool:
    """Cheap test before any parsing: does the span carry our events at all?"""
    return any(e.name == SAMPLE_EVENT or e.name == N_PLUS_ONE_EVENT for e in span.events)
