"""Database and HTTP client calls counted under each watched span.

Counting rides on the client spans that the application's own OpenTelemetry
instrumentations already produce; nothing here patches a driver. A database
span is a CLIENT span with ``db.system.name`` (or the older ``db.system``);
an HTTP client span is a CLIENT span with ``http.request.method`` (or
``http.method``). The totals are written on the watched span as each child
ends, because after the watched span ends nothing can be added to it.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from opentelemetry.trace import SpanKind

from . import quiet
from .watched import Watched

# Children of one request can end on several threads at once.
_lock = threading.Lock()


def classify(span: Any) -> Optional[str]:
    """``"db"``, ``"http"`` or None for an ended span."""
    if span.kind is not SpanKind.CLIENT:
        return None
    attributes = span.attributes
    if not attributes:
        return None
    if "db.system.name" in attributes or "db.system" in attributes:
        return "db"
    if "http.request.method" in attributes or "http.method" in attributes:
        return "http"
    return None


def child_ended(watched: Watched, span: Any) -> Optional[str]:
    """Count an ended descendant of ``watched``; returns its class."""
    kind = classify(span)
    if kind is None:
        return None
    start, end = span.start_time, span.end_time
    duration = end - start if start and end else 0
    with _lock:
        if kind == "db":
            watched.db_count += 1
            watched.db_ns += duration
            totals = {"slowstack.db.count": watched.db_count, "slowstack.db.duration_ms": watched.db_ns / 1e6}
        else:
            watched.http_count += 1
            watched.http_ns += duration
            totals = {"slowstack.http.count": watched.http_count, "slowstack.http.duration_ms": watched.http_ns / 1e6}
    root = watched.span
    if root is not None and not watched.ended:
        with quiet.quietly():
            root.set_attributes(totals)
    return kind
