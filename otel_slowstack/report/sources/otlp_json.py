"""OTLP JSON documents (``resourceSpans``) to ``SpanRecord``.

One decoder for what the ``otlp_json_file`` exporter writes, what an OTLP
collector's file exporter writes, and what Grafana Tempo answers for a
trace (``batches`` from ``/api/traces/<id>``, ``trace.resourceSpans`` from
``/api/v2/traces/<id>``). The variants differ in small ways that are all
accepted: ids in hex or base64, kinds as numbers or ``SPAN_KIND_*`` names,
64-bit integers as strings or numbers, ``scopeSpans`` or the older
``instrumentationLibrarySpans``.

Input is untrusted: a value of the wrong type anywhere is read as absent,
and a span that cannot be read at all is skipped and counted, never raised.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Iterator, Optional

from otel_slowstack.conventions import SERVICE_NAME

from .record import EventRecord, Skipped, SpanRecord

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
    if isinstance(value, bool):
        return "unspecified"
    if isinstance(value, int):
        return _KINDS.get(value, "unspecified")
    if isinstance(value, str):
        if value.isdigit():
            return _KINDS.get(_int(value), "unspecified")
        return value.lower().replace("span_kind_", "") or "unspecified"
    return "unspecified"


def _int(value: Any) -> int:
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e19 else 0
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def any_value(value: Any, depth: int = 0) -> Any:
    """One OTLP ``AnyValue`` to a plain Python value (None for what is not one)."""
    if not isinstance(value, dict) or not value or depth > 8:
        return None
    if "stringValue" in value:
        text = value["stringValue"]
        return text if isinstance(text, str) else None
    if "intValue" in value:
        return _int(value["intValue"])
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, bool) or not isinstance(number, (int, float, str)):
            return None
        try:
            return float(number)
        except (TypeError, ValueError, OverflowError):
            return None
    if "boolValue" in value:
        return value["boolValue"] is True or value["boolValue"] == "true"
    if "arrayValue" in value:
        return [any_value(v, depth + 1) for v in _list(_dict(value["arrayValue"]).get("values"))]
    if "kvlistValue" in value:
        return attributes(_dict(value["kvlistValue"]).get("values"), depth + 1)
    if "bytesValue" in value:
        data = value["bytesValue"]
        return data if isinstance(data, str) else None
    return None


def attributes(key_values: Any, depth: int = 0) -> dict:
    result: dict = {}
    for kv in _list(key_values):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            result[kv["key"]] = any_value(kv.get("value"), depth)
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


def spans(document: Any, skipped: Optional[Skipped] = None) -> Iterator[SpanRecord]:
    """Every span of an OTLP JSON document; ``NotOtlp`` if it is not one.
    Parts of the wrong shape are counted in ``skipped`` and passed over."""
    resource_spans = resource_spans_of(document)
    if resource_spans is None:
        raise NotOtlp("no resourceSpans")
    skipped = skipped if skipped is not None else Skipped()
    for resource_span in resource_spans:
        if not isinstance(resource_span, dict):
            skipped.add("a resourceSpans entry that is not an object")
            continue
        resource = attributes(_dict(resource_span.get("resource")).get("attributes"))
        service = resource.get(SERVICE_NAME)
        service = service if isinstance(service, str) else ""
        scopes = resource_span.get("scopeSpans") or resource_span.get("instrumentationLibrarySpans") or []
        if not isinstance(scopes, list):
            skipped.add("scopeSpans that is not a list")
            continue
        for scope in scopes:
            scope_spans = _dict(scope).get("spans") or []
            if not isinstance(scope_spans, list):
                skipped.add("spans that is not a list")
                continue
            for span in scope_spans:
                if not isinstance(span, dict):
                    skipped.add("a span that is not an object")
                    continue
                yield _span(span, service)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _span(span: dict, service: str) -> SpanRecord:
    events = [
        EventRecord(_text(e.get("name")), _int(e.get("timeUnixNano")), attributes(e.get("attributes")))
        for e in _list(span.get("events"))
        if isinstance(e, dict)
    ]
    return SpanRecord(
        trace_id=span_id_text(span.get("traceId")),
        span_id=span_id_text(span.get("spanId")),
        parent_span_id=span_id_text(span.get("parentSpanId")),
        name=_text(span.get("name")),
        kind=kind_text(span.get("kind")),
        start_ns=_int(span.get("startTimeUnixNano")),
        end_ns=_int(span.get("endTimeUnixNano")),
        attributes=attributes(span.get("attributes")),
        events=events,
        service=service,
    )
