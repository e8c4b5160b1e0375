"""OTLP JSON documents (``resourceSpans``) to ``SpanRecord``.

One decoder for what the ``otlp_json_file`` exporter writes, what an OTLP
collector's file exporter writes, and what Grafana Tempo answers for a
trace (``batches`` from ``/api/traces/<id>``, ``trace.resourceSpans`` from
``/api/v2/traces/<id>``). The variants differ in small ways that are all
accepted: ids in hex or base64, kinds as numbers or ``SPAN_KIND_*`` names,
64-bit integers as strings or numbers, ``scopeSpans`` or the older
``instrumentationLibrarySpans``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Iterator, Optional

from .record import EventRecord, SpanRecord

_HEX_ID = re.compile(r"\A(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})\Z")
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class NotOtlp(ValueError):
    """The document is JSON but not OTLP trace data."""


def span_id_text(value: Any) -> str:
    """Hex, lower case; Tempo's protobuf-JSON answers carry ids in base64."""
    if not value or not isinstance(value, str):
        return ""
    if _HEX_ID.match(value):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value.lower()


def kind_text(value: Any) -> str:
    if isinstance(value, int):
        return _KINDS.get(value, "unspecified")
    if isinstance(value, str):
        if value.isdigit():
            return _KINDS.get(int(value), "unspecified")
        return value.lower().replace("span_kind_", "") or "unspecified"
    return "unspecified"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def any_value(value: Any) -> Any:
    """One OTLP ``AnyValue`` to a plain Python value."""
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return _int(value["intValue"])
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return None
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", ())]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", ()))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(key_values: Any) -> dict:
    result: dict = {}
    for kv in key_values or ():
        if isinstance(kv, dict) and "key" in kv:
            result[kv["key"]] = any_value(kv.get("value"))
    return result


def resource_spans_of(document: Any) -> Optional[list]:
    """The ``resourceSpans`` list of any accepted document shape, else None."""
    if not isinstance(document, dict):
        return None
    if "trace" in document and isinstance(document["trace"], dict):
        document = document["trace"]
    for key in ("resourceSpans", "resource_spans", "batches"):
        value = document.get(key)
        if isinstance(value, list):
            return value
    return None


def spans(document: Any) -> Iterator[SpanRecord]:
    """Every span of an OTLP JSON document; ``NotOtlp`` if it is not one."""
    resource_spans = resource_spans_of(document)
    if resource_spans is None:
        raise NotOtlp("no resourceSpans")
    for resource_span in resource_spans:
        if not isinstance(resource_span, dict):
            raise NotOtlp("a resourceSpans entry is not an object")
        resource = attributes((resource_span.get("resource") or {}).get("attributes"))
        service = resource.get("service.name") or ""
        scopes = resource_span.get("scopeSpans") or resource_span.get("instrumentationLibrarySpans") or ()
        for scope in scopes:
            for span in (scope or {}).get("spans") or ():
                yield _span(span, str(service))


def _span(span: dict, service: str) -> SpanRecord:
    events = [
        EventRecord(str(e.get("name", "")), _int(e.get("timeUnixNano")), attributes(e.get("attributes")))
        for e in span.get("events") or ()
        if isinstance(e, dict)
    ]
    return SpanRecord(
        trace_id=span_id_text(span.get("traceId")),
        span_id=span_id_text(span.get("spanId")),
        parent_span_id=span_id_text(span.get("parentSpanId")),
        name=str(span.get("name", "")),
        kind=kind_text(span.get("kind")),
        start_ns=_int(span.get("startTimeUnixNano")),
        end_ns=_int(span.get("endTimeUnixNano")),
        attributes=attributes(span.get("attributes")),
        events=events,
        service=service,
    )
