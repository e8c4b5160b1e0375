"""Grafana Tempo's HTTP API (port 3200).

``/api/search`` with a TraceQL query for spans carrying our events finds the
traces (``start``/``end`` in Unix seconds, ``limit`` per page; there is no
cursor, so each next page ends at the earliest trace of the previous one and
repeats are skipped). Each trace is then fetched by id from
``/api/traces/<id>`` with ``Accept: application/json``, a few at a time, and
decoded as OTLP JSON (Tempo answers ``batches``; newer ones, and the v2 API,
``resourceSpans``). Tempo versions without event scopes in TraceQL reject
the first query; the fallback asks for the ``slowstack.samples`` span
attribute instead.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

from ..errors import ReportError
from . import otlp_json
from .http import HttpStatusError
from .jaeger import _span_text
from .record import SpanRecord

EVENT_QUERY = 'event:name = "slowstack.sample" || event:name = "slowstack.n_plus_one"'
ATTRIBUTE_QUERY = 'span.slowstack.samples > 0 || name = "slowstack.snapshot"'


def search_trace_id(value: object) -> str:
    """Search answers give hex ids with leading zeros trimmed; ``/api/traces`` wants all 32 digits."""
    text = str(value or "").strip().lower()
    if text and len(text) <= 32 and all(c in "0123456789abcdef" for c in text):
        return text.rjust(32, "0")
    return otlp_json.span_id_text(text)


def traceql(condition: str, service: Optional[str]) -> str:
    if service:
        quoted = service.replace("\\", "\\\\").replace('"', '\\"')
        return f'{{ resource.service.name = "{quoted}" && ({condition}) }}'
    return f"{{ {condition} }}"


class TempoSource:
    def __init__(self, client, query) -> None:
        self.client = client
        self.query = query
        self.description = f"Tempo at {client.base_url}"
        self.notes: list = []
        self.missing = 0

    def _search(self) -> list:
        query = self.query
        end_s = int(query.until_s if query.until_s is not None else time.time()) + 1
        start_s = end_s - 1 - int(query.since_s)
        condition = EVENT_QUERY
        seen: dict = {}
        while len(seen) < query.limit and end_s > start_s:
            page = max(1, min(query.page_size, query.limit - len(seen)))
            params = {"q": traceql(condition, query.service), "start": start_s, "end": end_s, "limit": page, "spss": 1}
            try:
                body = self.client.get_json("/api/search", params)
            except HttpStatusError as error:
                if error.status == 400 and condition == EVENT_QUERY:
                    condition = ATTRIBUTE_QUERY
                    continue
                raise
            traces = body.get("traces") if isinstance(body, dict) else None
            if traces is None and isinstance(body, dict) and "metrics" in body:
                traces = []
            if not isinstance(traces, list):
                raise ReportError(f"{self.client.base_url}/api/search did not answer in Tempo's format")
            new = 0
            earliest = end_s
            for trace in traces:
                trace_id = search_trace_id((trace or {}).get("traceID"))
                if not trace_id:
                    continue
                try:
                    earliest = min(earliest, int(trace.get("startTimeUnixNano") or 0) // 1_000_000_000)
                except (TypeError, ValueError):
                    pass
                if trace_id in seen:
                    continue
                seen[trace_id] = True
                new += 1
                if len(seen) >= query.limit:
                    break
            if len(traces) < page or not new:
                break
            end_s = earliest
        if len(seen) >= query.limit:
            self.notes.append(f"stopped at --limit {query.limit} traces; older ones were not read")
        return list(seen)

    def _known_services(self) -> Optional[list]:
        try:
            body = self.client.get_json("/api/search/tag/service.name/values")
        except ReportError:
            return None
        values = body.get("tagValues") if isinstance(body, dict) else None
        if not isinstance(values, list):
            return None
        return sorted(str(v.get("value") if isinstance(v, dict) else v) for v in values)

    def _trace(self, trace_id: str) -> Optional[dict]:
        try:
            return self.client.get_json(f"/api/traces/{trace_id}")
        except HttpStatusError as error:
            if error.status == 404:
                return None
            raise

    def spans(self, progress) -> Iterator[SpanRecord]:
        query = self.query
        if query.service:
            self.description = f"Tempo at {self.client.base_url}, service {query.service}"
        progress.start("searching Tempo", None)
        ids = self._search()
        if not ids:
            if query.service:
                services = self._known_services()
                if services is not None and query.service not in services:
                    raise ReportError(
                        f"Tempo at {self.client.base_url} knows no service {query.service!r} "
                        f"(services it knows: {', '.join(services) or 'none yet'})"
                    )
            raise ReportError(
                f"Tempo found no traces with otel-slowstack samples in the last {_span_text(query.since_s)}"
                + (f" for service {query.service!r}" if query.service else "")
            )
        progress.start("fetching traces from Tempo", len(ids))
        chunk = max(1, query.concurrency) * 4
        with ThreadPoolExecutor(max(1, query.concurrency)) as pool:
            for offset in range(0, len(ids), chunk):
                for document in pool.map(self._trace, ids[offset : offset + chunk]):
                    progress.advance(1)
                    if document is None:
                        self.missing += 1
                        continue
                    try:
                        yield from otlp_json.spans(document)
                    except otlp_json.NotOtlp:
                        raise ReportError(
                            f"{self.client.base_url}/api/traces/<id> did not answer OTLP JSON (batches or resourceSpans)"
                        ) from None
        if self.missing:
            self.notes.append(f"{self.missing} trace(s) found by search were gone when fetched (404)")
