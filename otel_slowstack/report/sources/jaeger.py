"""Jaeger's query HTTP APIs (port 16686): v3 first, v1 where it is the one.

Jaeger's main line answers the v3 API (``/api/v3/services``,
``/api/v3/traces``), OTLP JSON inside ``{"result": ...}`` objects, possibly
several one after the other as the answer streams; its v1 API
(``/api/services``, ``/api/traces``, Jaeger's own JSON model) is gone there
but is all that releases before 2.x answer. ``JaegerSource`` asks v3 and
falls back to v1 when v3 is not found.

The services list comes first, so a misspelt ``--service`` gets the list of
known ones instead of an empty report (a Jaeger that knows no service at all
answers v1's ``{"data": null}``). Then traces, page after page: Jaeger has no
cursor, so each next page ends just before the earliest trace of the
previous one, and traces seen twice are skipped. In v1, span events arrive
as span logs whose ``event`` field is the event's name and whose other
fields are its attributes; the span kind is the ``span.kind`` tag.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Iterator, Optional

from ..errors import ReportError
from . import otlp_json
from .http import HttpStatusError
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


def _rfc3339(us: int) -> str:
    """Microseconds since the epoch as v3 wants them (RFC 3339, UTC, nanosecond digits)."""
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}000Z"


class JaegerSource:
    def __init__(self, client, query) -> None:
        self.client = client
        self.query = query
        self.description = f"Jaeger at {client.shown_url}"
        self.notes: list = []
        self.skipped = Skipped()
        self.api = ""  # "v3" or "v1", once known
        self.coverage = ""

    def _services(self) -> list:
        """Known services, from v3 if it answers, else v1."""
        try:
            body = self.client.get_json("/api/v3/services")
        except HttpStatusError as error:
            if error.status not in (404, 405, 501):
                raise
        else:
            if isinstance(body, dict) and (isinstance(body.get("services"), list) or body == {}):
                self.api = "v3"
                return [s for s in body.get("services") or () if isinstance(s, str)]
        body = self.client.get_json("/api/services")
        problem = _errors(body)
        if problem:
            raise ReportError(f"Jaeger at {self.client.shown_url}: {problem}")
        if not isinstance(body, dict) or "data" not in body or not isinstance(body["data"], (list, type(None))):
            raise ReportError(f"{self.client.shown_url}/api/services did not answer in Jaeger's format")
        self.api = "v1"
        return [s for s in body["data"] or () if isinstance(s, str)]  # null: it knows no service yet

    def _page_v1(self, service: str, start_us: int, end_us: int, limit: int) -> list:
        body = self.client.get_json("/api/traces", {"service": service, "start": start_us, "end": end_us, "limit": limit})
        problem = _errors(body)
        if problem:
            raise ReportError(f"Jaeger at {self.client.shown_url}: {problem}")
        traces = body.get("data") if isinstance(body, dict) else None
        if traces is None and isinstance(body, dict) and "data" in body:
            return []
        if not isinstance(traces, list):
            raise ReportError(f"{self.client.shown_url}/api/traces did not answer in Jaeger's format")
        result = []
        for trace in traces:
            trace_id = _id(_dict(trace).get("traceID"))
            if trace_id:
                result.append((trace_id, list(trace_spans(trace, self.skipped))))
        return result

    def _page_v3(self, service: str, start_us: int, end_us: int, limit: int) -> list:
        params = {
            "query.service_name": service,
            "query.start_time_min": _rfc3339(start_us),
            "query.start_time_max": _rfc3339(end_us),
            "query.num_traces": limit,  # older name, still read
            "query.search_depth": limit,
        }
        try:
            body = self.client.get_json("/api/v3/traces", params)
        except HttpStatusError as error:
            if error.status == 404:  # v3 says "No traces found" with a 404
                return []
            raise
        chunks = body if isinstance(body, list) else [body]
        traces: dict = {}
        for chunk in chunks:
            if not isinstance(chunk, dict) or not isinstance(chunk.get("result"), dict):
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    message = _dict(chunk["error"]).get("message") or "error"
                    raise ReportError(f"Jaeger at {self.client.shown_url}: {message}")
                raise ReportError(f"{self.client.shown_url}/api/v3/traces did not answer in Jaeger's format")
            try:
                for span in otlp_json.spans(chunk["result"], self.skipped):
                    traces.setdefault(span.trace_id, []).append(span)
            except otlp_json.NotOtlp:
                self.skipped.add("a v3 answer chunk without resourceSpans")
        return list(traces.items())

    def spans(self, progress) -> Iterator[SpanRecord]:
        query = self.query
        services = self._services()
        known = ", ".join(sorted(services)) or "none yet"
        if not query.service:
            raise ReportError(f"Jaeger needs --service NAME (services it knows: {known})")
        if query.service not in services:
            raise ReportError(f"Jaeger at {self.client.shown_url} knows no service {query.service!r} (services it knows: {known})")
        end_us = int((query.until_s if query.until_s is not None else time.time()) * 1e6)
        start_us = end_us - int(query.since_s * 1e6)
        self.description = f"Jaeger at {self.client.shown_url} ({self.api} API), service {query.service}"
        page_of = self._page_v3 if self.api == "v3" else self._page_v1
        progress.start("fetching traces from Jaeger", query.limit)
        seen: set = set()
        cut = False
        while end_us > start_us:
            if len(seen) >= query.limit:
                cut = True
                break
            page = max(1, min(query.page_size, query.limit - len(seen)))
            traces = page_of(query.service, start_us, end_us, page)
            new = 0
            earliest = end_us
            for trace_id, spans in traces:
                for span in spans:
                    if span.start_ns:
                        earliest = min(earliest, span.start_ns // 1000)
                if trace_id in seen:
                    continue
                if len(seen) >= query.limit:
                    cut = True
                    break
                seen.add(trace_id)
                new += 1
                progress.advance(1)
                yield from spans
            if len(traces) < page or not new:
                break
            end_us = earliest - 1
        if not seen:
            raise ReportError(
                f"Jaeger has no traces of service {query.service!r} in the last {_span_text(query.since_s)}"
            )
        self.coverage = f"the spans of the {len(seen)} newest traces of {query.service} Jaeger returned"
        if cut or len(seen) >= query.limit:
            self.coverage += f"; --limit {query.limit} cut the answer, older traces were not read"
        if self.skipped.count:
            self.notes.append(self.skipped.note())


def _span_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
