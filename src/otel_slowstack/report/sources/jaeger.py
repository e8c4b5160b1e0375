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
from typing import Any, Iterator

from ..errors import ReportError
from .record import EventRecord, SpanRecord


def _tag_value(tag: dict) -> Any:
    kind = str(tag.get("type", "string")).lower()
    value = tag.get("value")
    try:
        if kind == "int64":
            return int(value)
        if kind == "float64":
            return float(value)
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if kind == "binary" and isinstance(value, str):
            return base64.b64decode(value).decode("utf-8", "replace")
    except (TypeError, ValueError):
        return value
    return value


def _tags(items: Any) -> dict:
    return {t["key"]: _tag_value(t) for t in items or () if isinstance(t, dict) and "key" in t}


def _parent(span: dict) -> str:
    for ref in span.get("references") or ():
        if isinstance(ref, dict) and ref.get("refType", "CHILD_OF") == "CHILD_OF" and ref.get("spanID"):
            return str(ref["spanID"]).lower()
    return str(span.get("parentSpanID") or "").lower()


def trace_spans(trace: Any) -> Iterator[SpanRecord]:
    """The spans of one trace in Jaeger's JSON model."""
    if not isinstance(trace, dict):
        return
    processes = trace.get("processes") or {}
    for span in trace.get("spans") or ():
        if not isinstance(span, dict):
            continue
        process = span.get("process") or processes.get(span.get("processID")) or {}
        tags = _tags(span.get("tags"))
        kind = str(tags.pop("span.kind", "") or "unspecified").lower()
        events = []
        for log in span.get("logs") or ():
            fields = _tags(log.get("fields"))
            name = str(fields.pop("event", "") or "")
            events.append(EventRecord(name, int(log.get("timestamp") or 0) * 1000, fields))
        start_ns = int(span.get("startTime") or 0) * 1000
        yield SpanRecord(
            trace_id=str(span.get("traceID") or trace.get("traceID") or "").lower(),
            span_id=str(span.get("spanID") or "").lower(),
            parent_span_id=_parent(span),
            name=str(span.get("operationName") or ""),
            kind=kind,
            start_ns=start_ns,
            end_ns=start_ns + int(span.get("duration") or 0) * 1000,
            attributes=tags,
            events=events,
            service=str(process.get("serviceName") or ""),
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
