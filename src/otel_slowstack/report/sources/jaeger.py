"""Jaeger's query HTTP API (the UI's ``/api``, port 16686).

``/api/services`` first, so a misspelt ``--service`` gets the list of known
ones instead of an empty report. Then ``/api/traces?service=&start=&end=&limit=``
(times in microseconds), page after page: Jaeger has no cursor, so each next
page ends just before the earliest trace of the previous one, and traces seen
twice are skipped. Span events arrive as span logs whose ``event`` field is
the event's name and whose other fields are its attributes; the span kind is
the ``span.kind`` tag.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Iterator, Optional

from ..errors import ReportError
from . import otlp_json
from .otlp_json import _dict, _list
from .record import EventRecord, Skipped, SpanRecord


def _tag_value(tag: dict) -> Any:
    kind = str(tag.get("type", "string")).lower()
    value = tag.get("value")
    try:
        if kind == "int64":
            return otlp_json._int(value)
        if kind == "float64":
            return float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if kind == "binary" and isinstance(value, str):
            return base64.b64decode(value).decode("utf-8", "replace")
    except (TypeError, ValueError, OverflowError):
        return value if isinstance(value, str) else None
    return value if isinstance(value, (str, int, float, bool)) else None


def _tags(items: Any) -> dict:
    return {t["key"]: _tag_value(t) for t in _list(items) if isinstance(t, dict) and isinstance(t.get("key"), str)}


def _id(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _parent(span: dict) -> str:
    for ref in _list(span.get("references")):
        if isinstance(ref, dict) and ref.get("refType", "CHILD_OF") == "CHILD_OF" and _id(ref.get("spanID")):
            return _id(ref["spanID"])
    return _id(span.get("parentSpanID"))


def trace_spans(trace: Any, skipped: Optional[Skipped] = None) -> Iterator[SpanRecord]:
    """The spans of one trace in Jaeger's JSON model; what is not one is skipped and counted."""
    skipped = skipped if skipped is not None else Skipped()
    if not isinstance(trace, dict):
        skipped.add("a Jaeger trace that is not an object")
        return
    processes = _dict(trace.get("processes"))
    for span in _list(trace.get("spans")):
        if not isinstance(span, dict):
            skipped.add("a Jaeger span that is not an object")
            continue
        process_id = span.get("processID")
        process = _dict(span.get("process")) or (_dict(processes.get(process_id)) if isinstance(process_id, str) else {})
        tags = _tags(span.get("tags"))
        kind = str(tags.pop("span.kind", "") or "unspecified").lower()
        events = []
        for log in _list(span.get("logs")):
            if not isinstance(log, dict):
                continue
            fields = _tags(log.get("fields"))
            name = fields.pop("event", "")
            events.append(EventRecord(name if isinstance(name, str) else "", otlp_json._int(log.get("timestamp")) * 1000, fields))
        start_ns = otlp_json._int(span.get("startTime")) * 1000
        name = span.get("operationName")
        service = process.get("serviceName")
        yield SpanRecord(
            trace_id=_id(span.get("traceID")) or _id(trace.get("traceID")),
            span_id=_id(span.get("spanID")),
            parent_span_id=_parent(span),
            name=name if isinstance(name, str) else "",
            kind=kind,
            start_ns=start_ns,
            end_ns=start_ns + otlp_json._int(span.get("duration")) * 1000,
            attributes=tags,
            events=events,
            service=service if isinstance(service, str) else "",
        )


def _errors(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return ""
    return "; ".join(str(e.get("msg") if isinstance(e, dict) else e) for e in errors)


class JaegerSource:
    def __init__(self, client, query) -> None:
        self.client = client
        self.query = query
        self.description = f"Jaeger at {client.base_url}"
        self.notes: list = []

    def _services(self) -> list:
        body = self.client.get_json("/api/services")
        problem = _errors(body)
        if problem:
            raise ReportError(f"Jaeger at {self.client.base_url}: {problem}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ReportError(f"{self.client.base_url}/api/services did not answer in Jaeger's format")
        return [str(s) for s in body["data"]]

    def spans(self, progress) -> Iterator[SpanRecord]:
        query = self.query
        services = self._services()
        known = ", ".join(sorted(services)) or "none yet"
        if not query.service:
            raise ReportError(f"Jaeger needs --service NAME (services it knows: {known})")
        if query.service not in services:
            raise ReportError(f"Jaeger at {self.client.base_url} knows no service {query.service!r} (services it knows: {known})")
        end_us = int((query.until_s if query.until_s is not None else time.time()) * 1e6)
        start_us = end_us - int(query.since_s * 1e6)
        self.description = f"Jaeger at {self.client.base_url}, service {query.service}"
        progress.start("fetching traces from Jaeger", query.limit)
        seen: set = set()
        while len(seen) < query.limit and end_us > start_us:
            page = max(1, min(query.page_size, query.limit - len(seen)))
            body = self.client.get_json(
                "/api/traces",
                {"service": query.service, "start": start_us, "end": end_us, "limit": page},
            )
            problem = _errors(body)
            if problem:
                raise ReportError(f"Jaeger at {self.client.base_url}: {problem}")
            traces = body.get("data") if isinstance(body, dict) else None
            if not isinstance(traces, list):
                raise ReportError(f"{self.client.base_url}/api/traces did not answer in Jaeger's format")
            new = 0
            earliest = end_us
            for trace in traces:
                trace_id = str((trace or {}).get("traceID") or "")
                if not trace_id or trace_id in seen:
                    continue
                seen.add(trace_id)
                new += 1
                progress.advance(1)
                for span in trace_spans(trace):
                    earliest = min(earliest, span.start_ns // 1000)
                    yield span
                if len(seen) >= query.limit:
                    break
            if len(traces) < page or not new:
                break
            end_us = earliest - 1
        if not seen:
            raise ReportError(
                f"Jaeger has no traces of service {query.service!r} in the last {_span_text(query.since_s)}"
            )
        if len(seen) >= query.limit:
            self.notes.append(f"stopped at --limit {query.limit} traces; older ones were not read")


def _span_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
