"""Grafana Tempo's HTTP API (port 3200).

``/api/search`` with a TraceQL query for spans carrying our events finds the
traces (``start``/``end`` in Unix seconds, ``limit`` per page). Tempo
answers the first matches it comes across, not the newest, unless the query
ends in ``with (most_recent=true)``, so it does. There is no cursor: each
next page ends at the second of the earliest trace of the previous one
(that second included: seconds are coarse, many traces share one), repeats
are skipped, and a full page with nothing new asks again for twice as many,
so no trace falls between pages. Each trace is then fetched by id from
``/api/traces/<id>`` with ``Accept: application/json``, a few at a time, and
decoded as OTLP JSON (Tempo answers ``batches``; newer ones, and the v2 API,
``resourceSpans``). Tempo versions without event scopes in TraceQL reject
the first query; the fallback asks for the ``slowstack.samples`` span
attribute instead. Last, ``tempo_metrics`` asks for whole-window totals per
route, for the ranking of routes by worker time.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

from otel_slowstack.conventions import N_PLUS_ONE_EVENT, SAMPLE_EVENT, SAMPLES, SERVICE_NAME, SNAPSHOT_SPAN

from ..errors import ReportError
from . import otlp_json
from .http import HttpStatusError
from .jaeger import _span_text
from .record import Skipped, SpanRecord
from .tempo_metrics import window_totals

EVENT_QUERY = f'event:name = "{SAMPLE_EVENT}" || event:name = "{N_PLUS_ONE_EVENT}"'
ATTRIBUTE_QUERY = f'span.{SAMPLES} > 0 || name = "{SNAPSHOT_SPAN}"'


def search_trace_id(value: object) -> str:
    """Search answers give hex ids with leading zeros trimmed; ``/api/traces`` wants all 32 digits."""
    text = str(value or "").strip().lower()
    if text and len(text) <= 32 and all(c in "0123456789abcdef" for c in text):
        return text.rjust(32, "0")
    return otlp_json.span_id_text(text)


MOST_RECENT = " with (most_recent=true)"
#: A page grows up to this many traces when one second holds more than a page.
MAX_PAGE = 10_000


def traceql(condition: str, service: Optional[str], most_recent: bool = True) -> str:
    hint = MOST_RECENT if most_recent else ""
    if service:
        quoted = service.replace("\\", "\\\\").replace('"', '\\"')
        return f'{{ resource.{SERVICE_NAME} = "{quoted}" && ({condition}) }}{hint}'
    return f"{{ {condition} }}{hint}"


class TempoSource:
    def __init__(self, client, query) -> None:
        self.client = client
        self.query = query
        self.description = f"Tempo at {client.shown_url}"
        self.notes: list = []
        self.missing = 0
        self.cut = False
        self.skipped = Skipped()
        self.coverage = ""
        self.window: Optional[dict] = None
        self.window_range = (0, 0)

    def _search(self) -> list:
        query = self.query
        end_s = int(query.until_s if query.until_s is not None else time.time()) + 1
        start_s = end_s - 1 - int(query.since_s)
        self.window_range = (start_s, end_s)
        condition = EVENT_QUERY
        most_recent = True
        seen: dict = {}
        page = max(1, min(query.page_size, query.limit))
        self.cut = False
        while end_s > start_s:
            if len(seen) >= query.limit:
                self.cut = True
                break
            params = {"q": traceql(condition, query.service, most_recent), "start": start_s, "end": end_s,
                      "limit": page, "spss": 1}
            try:
                body = self.client.get_json("/api/search", params)
            except HttpStatusError as error:
                if error.status == 400 and most_recent:  # a Tempo before 2.8 has no query hints
                    most_recent = False
                    continue
                if error.status == 400 and condition == EVENT_QUERY:
                    condition = ATTRIBUTE_QUERY
                    continue
                raise
            traces = body.get("traces") if isinstance(body, dict) else None
            if traces is None and isinstance(body, dict) and "metrics" in body:
                traces = []
            if not isinstance(traces, list):
                raise ReportError(f"{self.client.shown_url}/api/search did not answer in Tempo's format")
            new = 0
            earliest = end_s
            for trace in traces:
                trace = trace if isinstance(trace, dict) else {}
                trace_id = search_trace_id(trace.get("traceID"))
                if not trace_id:
                    continue
                started = otlp_json._int(trace.get("startTimeUnixNano")) // 1_000_000_000
                if started:
                    earliest = min(earliest, started)
                if trace_id in seen:
                    continue
                if len(seen) >= query.limit:
                    self.cut = True
                    break
                seen[trace_id] = True
                new += 1
            if len(traces) < page or self.cut:
                break  # the window holds no more
            if not new or earliest >= end_s - 1:
                # A full page, all in one second or all seen: the same window, a bigger page.
                if page >= MAX_PAGE:
                    self.notes.append(f"more than {MAX_PAGE} traces in one second; some of them were not read")
                    break
                page = min(page * 2, MAX_PAGE)
                if earliest < end_s - 1:
                    end_s = earliest + 1
                continue
            end_s = earliest + 1  # that second again: its other traces may not have fit
            page = max(1, min(query.page_size, query.limit))
        if not most_recent:
            self.notes.append("this Tempo cannot be asked for the most recent traces first (with (most_recent=true)): "
                              "the traces read may not be the newest")
        return list(seen)

    def _known_services(self) -> Optional[list]:
        try:
            body = self.client.get_json(f"/api/search/tag/{SERVICE_NAME}/values")
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
            self.description = f"Tempo at {self.client.shown_url}, service {query.service}"
        progress.start("searching Tempo", None)
        ids = self._search()
        if not ids:
            if query.service:
                services = self._known_services()
                if services is not None and query.service not in services:
                    raise ReportError(
                        f"Tempo at {self.client.shown_url} knows no service {query.service!r} "
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
                        yield from otlp_json.spans(document, self.skipped)
                    except otlp_json.NotOtlp:
                        raise ReportError(
                            f"{self.client.shown_url}/api/traces/<id> did not answer OTLP JSON (batches or resourceSpans)"
                        ) from None
        if self.missing:
            self.notes.append(f"{self.missing} trace(s) found by search were gone when fetched (404)")
        if self.skipped.count:
            self.notes.append(self.skipped.note())
        fetched = len(ids) - self.missing
        progress.start("asking Tempo for whole-window totals", None)
        self.window = window_totals(self.client, query.service, *self.window_range)
        if self.window is not None:
            self.coverage = (f"every server and consumer span of the last {_span_text(query.since_s)} for requests, time and "
                             f"percentiles (Tempo's TraceQL metrics); the {fetched} newest traces with samples for the rest")
        else:
            self.coverage = (f"the spans of the {fetched} newest traces with otel-slowstack samples Tempo returned;"
                             " requests that were never sampled are not among them (this Tempo has no TraceQL metrics)")
        if self.cut:
            self.coverage += f"; --limit {query.limit} cut the answer, older traces were not read"
