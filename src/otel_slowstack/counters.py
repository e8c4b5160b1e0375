"""Database and HTTP client calls counted under each watched span, and N+1s.

Counting rides on the client spans that the application's own OpenTelemetry
instrumentations already produce; nothing here patches a driver. A database
span is a CLIENT span with ``db.system.name`` (or the older ``db.system``);
an HTTP client span is a CLIENT span with ``http.request.method`` (or
``http.method``). Every descendant ending in this process counts, on any
thread the request handed work to with its context. The totals are written
on the watched span as each child ends, because after the watched span ends
nothing can be added to it.

Calls that run under the span but are not its own work are not counted:
Celery's result backend storing a task's outcome after the task function
returned (``celery_hooks`` marks those moments with ``not_counted``).

One call traced twice, by an ORM's instrumentation (SQLAlchemy's) and by
the driver's beneath it, counts once: a database span that wraps, on the
same thread, the database span counted just before it with the same
statement is the same call seen from higher up.

N+1: each database span's statement (``db.query.text`` or ``db.statement``)
is normalised (``sql.normalized``, cached) and counted per watched span. The
``OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE``-th run of one statement adds one
``slowstack.n_plus_one`` event at once, slow request or not, carrying the
stack of the code that issued it: taken from the thread ending the span, which
is the thread that ran the query, at that moment, for the price of one walk
up its frames. Both the statements tracked per span and the events per span
are capped, so a request issuing a million distinct statements holds no more
than ``MAX_STATEMENTS`` of them.
"""

from __future__ import annotations

import sys
import threading
from contextvars import ContextVar
from types import FrameType
from typing import Any, Optional

from opentelemetry.trace import SpanKind

from . import quiet, sql
from .entry import entry_candidates, find_entry
from .frames import frame_lines
from .sampler import stack_budget
from .settings import Settings
from .stacktrace import format_stack
from .watched import Watched

REPEAT_EVENT = "slowstack.n_plus_one"
#: Distinct normalised statements counted per watched span; later ones are not.
MAX_STATEMENTS = 200
#: ``slowstack.n_plus_one`` events per watched span at most: the SDK keeps 128
#: events per span and drops the oldest, which would be the samples.
MAX_REPEAT_EVENTS = 20

# Children of one request can end on several threads at once.
_lock = threading.Lock()

#: True while the code running is not the watched span's own work although
#: it runs under it: Celery's result backend storing a task's outcome after
#: the task returned (set by ``celery_hooks``). Client spans ending then are
#: not counted.
not_counted: ContextVar = ContextVar("otel_slowstack_not_counted", default=False)


def classify(span: Any, attributes: Any = None) -> Optional[str]:
    """``"db"``, ``"http"`` or None for an ended span."""
    if span.kind is not SpanKind.CLIENT:
        return None
    if attributes is None:
        attributes = span.attributes
    if not attributes:
        return None
    if "db.system.name" in attributes or "db.system" in attributes:
        return "db"
    if "http.request.method" in attributes or "http.method" in attributes:
        return "http"
    return None


def _attributes_of(span: Any) -> Any:
    """An ended span's attributes, as the SDK's own plain dict where it keeps one.

    The public ``attributes`` is a read-only proxy over a Python-level
    mapping, where every missing key costs a raised and caught ``KeyError``;
    an ended span's attributes no longer change, so the dict is safe to read.
    """
    plain = getattr(getattr(span, "_attributes", None), "_dict", None)
    return plain if type(plain) is dict else (span.attributes or {})


def statement_text(attributes: Any) -> Optional[str]:
    """The statement a database span ran, under either convention's key."""
    text = attributes.get("db.query.text") or attributes.get("db.statement")
    return text if isinstance(text, str) and text else None


def child_ended(watched: Watched, span: Any, settings: Settings) -> Optional[str]:
    """Count an ended descendant of ``watched``; returns its class when counted."""
    attributes = _attributes_of(span)
    kind = classify(span, attributes)
    if kind is None or not_counted.get():
        return None
    start, end = span.start_time, span.end_time
    duration = end - start if start and end else 0
    if kind == "http":
        with _lock:
            watched.http_count += 1
            watched.http_ns += duration
            _write(watched, {"slowstack.http.count": watched.http_count, "slowstack.http.duration_ms": watched.http_ns / 1e6})
        return kind
    text = statement_text(attributes)
    key = sql.normalized(text) if text is not None else None
    thread = threading.get_ident()
    threshold = settings.n_plus_one
    repeats = 0
    with _lock:
        last = watched.db_last
        if last is not None and _wraps(last, start, end, thread, key):
            watched.db_last = (start, end, thread, key if key is not None else last[3])
            return None
        watched.db_last = (start, end, thread, key)
        watched.db_count += 1
        watched.db_ns += duration
        _write(watched, {"slowstack.db.count": watched.db_count, "slowstack.db.duration_ms": watched.db_ns / 1e6})
        if key is not None and threshold is not None:
            repeats = _count_statement(watched, key, threshold)
    if repeats:
        _report_repeat(watched, key, repeats, settings)
    return kind


def _wraps(last: tuple, start: int, end: int, thread: int, key: Optional[str]) -> bool:
    """Whether a span from ``start`` to ``end`` encloses the last counted call."""
    last_start, last_end, last_thread, last_key = last
    return (
        thread == last_thread
        and start < last_start
        and last_end <= end
        and (key is None or last_key is None or key == last_key)
    )


def _count_statement(watched: Watched, key: str, threshold: int) -> int:
    """One more run of ``key``; returns the count when it reaches the threshold, else 0."""
    counts = watched.statements
    if counts is None:
        counts = watched.statements = {}
    seen = counts.get(key)
    if seen is None:
        if len(counts) < MAX_STATEMENTS:
            counts[key] = 1
        return 0
    seen += 1
    counts[key] = seen
    if seen == threshold and watched.repeats_reported < MAX_REPEAT_EVENTS:
        watched.repeats_reported += 1
        return seen
    return 0


def _write(watched: Watched, totals: dict) -> None:
    """Under ``_lock``: two threads writing outside it could leave the older total last."""
    root = watched.span
    if root is None or watched.ended:
        return
    if getattr(watched.owner, "thread_ident", None) == threading.get_ident():
        # The root ends on this thread, so not while we write: no race to hush.
        root.set_attributes(totals)
        return
    with quiet.quietly():
        root.set_attributes(totals)


def _report_repeat(watched: Watched, key: str, count: int, settings: Settings) -> None:
    root = watched.span
    if root is None or watched.ended:
        return
    stack = issuing_stack(watched.owner, settings, stack_budget(root, settings))
    attributes = {"db.query.text": key, "slowstack.repeat.count": count, "code.stacktrace": stack}
    with quiet.quietly():
        root.add_event(REPEAT_EVENT, attributes)


# -- the stack of the code issuing a statement ---------------------------------

#: Frames that only carry the span: instrumentation, the SDK, this package.
_CARRIERS = ("otel_slowstack", "opentelemetry.", "contextlib", "wrapt")
_carrier_codes: dict = {}


def _is_carrier(frame: FrameType) -> bool:
    code = frame.f_code
    known = _carrier_codes.get(code)
    if known is None:
        name = frame.f_globals.get("__name__")
        known = isinstance(name, str) and name.startswith(_CARRIERS)
        if len(_carrier_codes) > 4096:
            _carrier_codes.clear()
        _carrier_codes[code] = known
    return known


def issuing_stack(owner: Any, settings: Settings, max_bytes: int) -> str:
    """The calling thread's stack outside the tracing machinery, formatted.

    On the thread that owns the watched span the stack starts at the span's
    entry, as in samples; on a thread the request handed work to, it is the
    whole stack of that thread.
    """
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None and _is_carrier(frame):
        frame = frame.f_back
    if frame is None:
        return ""
    entry = None
    if owner is not None and getattr(owner, "thread_ident", None) == threading.get_ident():
        entry = find_entry(frame, entry_candidates(getattr(owner, "starter", None)))
    lines = frame_lines(frame, entry)
    del frame, entry
    return format_stack(lines, settings.max_frames, max_bytes)
