"""Samples and N+1 findings as plain data, read from a span's events.

A ``Sample`` is one ``slowstack.sample`` event: where the span's code was
(``frames``, parsed from ``code.stacktrace``) and what surrounded it (CPU
ratio, the call in flight, client-call counters). An ``NPlusOne`` is one
``slowstack.n_plus_one`` event. Both carry the route and ids of the span
they were recorded on, so everything after this stage works on these two
types alone. Every name read here is ``conventions.py``'s, the module the
writer spells them from too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from otel_slowstack import conventions
from otel_slowstack.conventions import N_PLUS_ONE_EVENT, SAMPLE_EVENT

from .sources.record import SpanRecord
from .stacks import parse_stack

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
    return conventions.route_label(span.attributes, span.name)


def snapshot_route(span: SpanRecord) -> Optional[str]:
    """The route of the request a snapshot span sampled, from its
    ``slowstack.subject*`` attributes; None when it does not say (older data)."""
    return conventions.subject_route(span.attributes)


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


def _recorded(span: SpanRecord, name: str, route: Optional[str]) -> Iterator[tuple]:
    """``(where, attributes)`` of each event ``name`` on the span: ``where`` holds
    the fields every finding shares (the route, worked out once, and the ids)."""
    where: Optional[dict] = None
    for event in span.events:
        if event.name != name:
            continue
        if where is None:
            where = {
                "route": route if route is not None else route_of(span),
                "service": span.service,
                "trace_id": span.trace_id,
                "span_id": span.span_id,
            }
        yield where, event.attributes


def _frames(attributes: dict) -> tuple:
    stack = attributes.get(conventions.CODE_STACKTRACE)
    return parse_stack(stack if isinstance(stack, str) else None)


def samples_of(span: SpanRecord, route: Optional[str] = None) -> list:
    """Every ``slowstack.sample`` event of the span, in recorded order."""
    return [
        Sample(
            **where,
            frames=_frames(a),
            trigger=_text(a.get(conventions.TRIGGER)) or "",
            index=_number(a.get(conventions.SAMPLE_INDEX), int) or 0,
            elapsed_ms=_number(a.get(conventions.ELAPSED_MS), float),
            cpu_ratio=_number(a.get(conventions.CPU_RATIO), float),
            in_flight=_text(a.get(conventions.IN_FLIGHT)),
            db_count=_number(a.get(conventions.DB_COUNT), int) or 0,
            db_duration_ms=_number(a.get(conventions.DB_DURATION_MS), float) or 0.0,
            http_count=_number(a.get(conventions.HTTP_COUNT), int) or 0,
            http_duration_ms=_number(a.get(conventions.HTTP_DURATION_MS), float) or 0.0,
            thread_name=_text(a.get(conventions.THREAD_NAME)) or "",
            loop_blocked_by=_text(a.get(conventions.LOOP_BLOCKED_BY)),
        )
        for where, a in _recorded(span, SAMPLE_EVENT, route)
    ]


def n_plus_ones_of(span: SpanRecord, route: Optional[str] = None) -> list:
    """Every ``slowstack.n_plus_one`` event of the span that names its statement."""
    result = []
    for where, a in _recorded(span, N_PLUS_ONE_EVENT, route):
        statement = conventions.statement_text(a)
        if statement is not None:
            count = _number(a.get(conventions.REPEAT_COUNT), int) or 0
            result.append(NPlusOne(**where, statement=statement, count=count, frames=_frames(a)))
    return result


def has_findings(span: SpanRecord) -> bool:
    """Cheap test before any parsing: does the span carry our events at all?"""
    return any(e.name == SAMPLE_EVENT or e.name == N_PLUS_ONE_EVENT for e in span.events)
