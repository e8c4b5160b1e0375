"""A real OTLP/HTTP trace receiver for the tests: what a backend would see.

Payloads from the real OTLP exporter are decoded with ``opentelemetry-proto``
into plain dicts (``name``, ``kind``, ``attributes``, ``events``, ``status``
...), so tests assert on exactly what reaches the backend; ``support.spans``
reads samples and stacks out of them. Needs ``opentelemetry-proto`` (the test
extra): fixtures import it when they run, never at collection.

Threads: the HTTP server's request threads append to ``spans`` under the
condition that ``wait_for`` waits on in the test's thread.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {
    trace_pb2.Span.SPAN_KIND_INTERNAL: "internal",
    trace_pb2.Span.SPAN_KIND_SERVER: "server",
    trace_pb2.Span.SPAN_KIND_CLIENT: "client",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "producer",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "consumer",
}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, which) if which else None


def _attributes(kvs: Any) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


def decode(body: bytes) -> list:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "name": span.name,
                        "kind": KINDS.get(span.kind, "unspecified"),
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": _attributes(span.attributes),
                        "events": [
                            {
                                "name": e.name,
                                "time_ns": e.time_unix_nano,
                                "attributes": _attributes(e.attributes),
                            }
                            for e in span.events
                        ],
                        "status": STATUS.get(span.status.code, "unset"),
                        "status_message": span.status.message,
                        "scope": scope_spans.scope.name,
                        "resource": resource,
                    }
                )
    return spans


class Receiver:
    """``with Receiver() as r: ... r.endpoint ... r.wait_for(...)``."""

    def __init__(self, delay_s: float = 0.0, status: int = 200) -> None:
        self.spans: list = []
        self.requests = 0
        self.delay_s = delay_s
        self.status = status
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if self.path.rstrip("/").endswith("/v1/traces") and receiver.status == 200:
                    spans = decode(body)
                    with receiver._cond:
                        receiver.spans.extend(spans)
                        receiver.requests += 1
                        receiver._cond.notify_all()
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(
        self, predicate: Callable[[dict], bool], timeout: float = 30.0, count: int = 1
    ) -> list:
        """Spans matching ``predicate``, once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for s in self.spans if predicate(s)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({s["name"] for s in self.spans})
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {count} span(s); "
                        f"received {len(self.spans)}: {names}"
                    )
                self._cond.wait(left)
