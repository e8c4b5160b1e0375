"""Local HTTP servers answering like Jaeger's query API and Grafana Tempo.

They serve traces made by ``report_spans`` in the formats those APIs
document: Jaeger's ``/api/services`` and ``/api/traces`` (JSON model, span
logs for events, ``errors`` in the envelope), Tempo's ``/api/echo``,
``/api/search`` (TraceQL, ``start``/``end`` in seconds, ``limit``),
``/api/search/tag/service.name/values`` and ``/api/traces/<id>`` (protobuf
JSON: ``batches``, base64 ids, enum-name kinds). Each keeps the requests it
saw so tests can check paging and headers.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlparse

from support.report_spans import by_trace, jaeger_trace, otlp_document, tempo_document


class _Backend:
    def __init__(self, spans: list, token: Optional[str] = None) -> None:
        self.traces = by_trace(spans)  # trace id -> spans
        self.token = token
        self.requests: list = []  # (path, query dict, headers dict)
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                backend.requests.append((url.path, query, dict(self.headers)))
                if backend.token and self.headers.get("Authorization") != f"Bearer {backend.token}":
                    self.answer(401, "Unauthorized\n", "text/plain")
                    return
                backend.route(self, url.path, query)

            def answer(self, status: int, body, content_type: str = "application/json") -> None:
                data = body if isinstance(body, str) else json.dumps(body)
                raw = data.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start_ns(self, trace_id: str) -> int:
        return min(s.start_time for s in self.traces[trace_id])

    def service_of(self, trace_id: str) -> str:
        return self.traces[trace_id][0].resource.attributes.get("service.name")

    def paths(self, prefix: str) -> list:
        return [r for r in self.requests if r[0].startswith(prefix)]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class Jaeger(_Backend):
    def route(self, handler, path: str, query: dict) -> None:
        if path == "/api/services":
            services = sorted({self.service_of(t) for t in self.traces} | {"jaeger-all-in-one"})
            handler.answer(200, {"data": services, "total": len(services), "limit": 0, "offset": 0, "errors": None})
        elif path == "/api/traces":
            if "service" not in query:
                handler.answer(400, {"data": None, "total": 0, "limit": 0, "offset": 0,
                                     "errors": [{"code": 400, "msg": "parameter 'service' is required"}]})
                return
            start, end = int(query.get("start", 0)), int(query.get("end", 1 << 62))
            limit = int(query.get("limit", 20))
            matching = [
                t for t in self.traces
                if self.service_of(t) == query["service"] and start <= self.start_ns(t) // 1000 <= end
            ]
            matching.sort(key=self.start_ns, reverse=True)  # newest first, as Jaeger answers
            data = [jaeger_trace(self.traces[t]) for t in matching[:limit]]
            handler.answer(200, {"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None})
        else:
            handler.answer(404, "404 page not found\n", "text/plain")


class Tempo(_Backend):
    def __init__(self, spans: list, token: Optional[str] = None, style: str = "batches", event_scopes: bool = True,
                 metrics: bool = False) -> None:
        super().__init__(spans, token)
        self.style = style
        self.event_scopes = event_scopes  # False: a Tempo older than TraceQL's event scope
        self.metrics = metrics  # True: a Tempo with the TraceQL metrics API (2.8+)

    def _instant(self, handler, query: dict) -> None:
        """``/api/metrics/query``: ``QueryInstantResponse`` of tempo.proto, ``{"series": [{"labels", "value"}]}``;
        ``by (...)`` labels as OTLP key-values (absent attributes left out), quantiles labelled ``p``."""
        q = query["q"]
        start, end = int(query["start"]), int(query["end"])
        groups: dict = {}
        for spans in self.traces.values():
            for span in spans:
                if span.kind.name not in ("SERVER", "CONSUMER") or not start <= span.start_time // 1_000_000_000 < end:
                    continue
                labels = tuple((key, span.attributes[key[len("span."):]])
                               for key in ("span.http.route", "span.http.request.method", "span.http.method")
                               if key[len("span."):] in span.attributes)
                groups.setdefault(labels, []).append(((span.end_time or span.start_time) - span.start_time) / 1e9)
        series = []
        for labels, seconds in groups.items():
            kv = [{"key": k, "value": {"stringValue": v}} for k, v in labels]
            if "count_over_time()" in q:
                series.append({"labels": kv, "value": len(seconds)})
            elif "sum_over_time(duration)" in q:
                series.append({"labels": kv, "value": sum(seconds)})
            else:
                ordered = sorted(seconds)
                for p in (0.5, 0.95, 0.99):
                    value = ordered[min(len(ordered) - 1, max(0, int(p * len(ordered) + 0.999999) - 1))]
                    series.append({"labels": kv + [{"key": "p", "value": {"doubleValue": p}}], "value": value})
        handler.answer(200, {"series": series, "metrics": {"inspectedBytes": "1024", "totalJobs": 1, "completedJobs": 1}})

    def _matches(self, trace_id: str, q: str) -> bool:
        service = re.search(r'resource\.service\.name = "([^"]*)"', q)
        if service and self.service_of(trace_id) != service.group(1):
            return False
        spans = self.traces[trace_id]
        if "event:name" in q:
            return any(e.name in ("slowstack.sample", "slowstack.n_plus_one") for s in spans for e in s.events)
        return any((s.attributes.get("slowstack.samples") or 0) > 0 or s.name == "slowstack.snapshot" for s in spans)

    def route(self, handler, path: str, query: dict) -> None:
        if path == "/api/echo":
            handler.answer(200, "echo", "text/plain")
        elif path == "/api/search":
            q = query.get("q", "")
            if ("event:" in q or "with (" in q) and not self.event_scopes:
                handler.answer(400, 'invalid TraceQL query: parse error at line 1, col 3: syntax error: unexpected IDENTIFIER\n', "text/plain")
                return
            start, end = int(query.get("start", 0)), int(query.get("end", 1 << 40))
            limit = int(query.get("limit", 20))
            found = [t for t in self.traces if self._matches(t, q) and start <= self.start_ns(t) // 1_000_000_000 < end]
            # Tempo answers the first matches its jobs come across, oldest blocks
            # first; the newest first only when the query asks for them.
            found.sort(key=self.start_ns, reverse="with (most_recent=true)" in q)
            traces = []
            for trace_id in found[:limit]:
                root = self.traces[trace_id][0]
                traces.append({
                    "traceID": trace_id.lstrip("0") or "0",  # Tempo trims leading zeros
                    "rootServiceName": self.service_of(trace_id),
                    "rootTraceName": root.name,
                    "startTimeUnixNano": str(self.start_ns(trace_id)),
                    "durationMs": 2000,
                    "spanSets": [{"spans": [{"spanID": format(root.context.span_id, "016x"),
                                             "startTimeUnixNano": str(root.start_time), "durationNanos": "2000000000"}],
                                  "matched": 1}],
                })
            handler.answer(200, {"traces": traces, "metrics": {"inspectedTraces": len(self.traces), "inspectedBytes": "1024",
                                                               "completedJobs": 1, "totalJobs": 1}})
        elif path == "/api/metrics/query" and self.metrics:
            self._instant(handler, query)
        elif path == "/api/search/tag/service.name/values":
            handler.answer(200, {"tagValues": sorted({self.service_of(t) for t in self.traces})})
        elif path.startswith("/api/traces/"):
            wanted = path.rsplit("/", 1)[1].lower().rjust(32, "0")
            if wanted not in self.traces:
                handler.answer(404, "trace not found\n", "text/plain")
                return
            handler.answer(200, tempo_document(self.traces[wanted], self.style))
        else:
            handler.answer(404, "404 page not found\n", "text/plain")


class JaegerV3(_Backend):
    """Jaeger's main line: only the v3 API. ``/api/v3/traces`` streams one
    ``{"result": ...}`` object per trace (grpc-gateway's server streaming), and
    answers 404 ``No traces found`` when nothing matches, as
    ``apiv3/http_gateway.go`` does; ``/api/services`` and ``/api/traces`` are gone."""

    def route(self, handler, path: str, query: dict) -> None:
        from datetime import datetime, timezone

        if path == "/api/v3/services":
            handler.answer(200, {"services": sorted({self.service_of(t) for t in self.traces})})
        elif path == "/api/v3/traces":
            service = query.get("query.service_name") or query.get("query.serviceName")
            def ns(value: str) -> int:  # RFC 3339 in UTC, up to nanosecond digits
                whole, _, fraction = value.rstrip("Z").partition(".")
                at = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
                return int(at.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])

            low_ns, high_ns = ns(query["query.start_time_min"]), ns(query["query.start_time_max"])
            limit = int(query.get("query.search_depth") or query.get("query.num_traces") or 100)
            matching = [t for t in self.traces if self.service_of(t) == service and low_ns <= self.start_ns(t) <= high_ns]
            matching.sort(key=self.start_ns, reverse=True)
            if not matching:
                handler.answer(404, {"error": {"httpCode": 404, "message": "No traces found"}})
                return
            chunks = "".join(json.dumps({"result": otlp_document(self.traces[t])}) for t in matching[:limit])
            handler.answer(200, chunks)
        else:
            handler.answer(404, "404 page not found\n", "text/plain")


class Fixtures(_Backend):
    """Serves fixed answers: path -> (status, body text)."""

    def __init__(self, answers: dict) -> None:
        super().__init__([])
        self.answers = answers

    def route(self, handler, path: str, query: dict) -> None:
        status, body = self.answers.get(path, (404, "404 page not found\n"))
        handler.answer(status, body, "application/json" if body.lstrip().startswith(("{", "[")) else "text/plain")
