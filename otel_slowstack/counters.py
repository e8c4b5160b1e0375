"""Database and HTTP client calls counted under each watched span, and N+1s.

Counting rides on the client spans that the application's own OpenTelemetry
instrumentations already produce; nothing here patches a driver. A database
span is a CLIENT span with ``db.system.name`` (or the older ``db.system``);
an HTTP client span is a CLIENT span with ``http.request.method`` (or
``http.method``). Every descendant ending in this process counts, on any
thread the request handed work to with its context.

No lock: each thread that ends a request's child spans counts in a record of
its own (``ThreadCalls``), which only that thread writes; the watchdog reads
the sums (``Calls.totals``) for a sample, and the totals are written on the
watched span once, as it ends (``processor.py``).

Calls that run under the span but are not its own work are not counted:
Celery's result backend storing a task's outcome after the task function
returned (``celery_hooks`` marks those moments with ``not_counted``).

One call traced twice, by an ORM's instrumentation (SQLAlchemy's) and by
the driver's beneath it, counts once: a database span that wraps, on the
same thread, the database span counted just before it with the same
statement is the same call seen from higher up.

N+1: each database span's statement (``db.query.text`` or ``db.statement``)
is normalised (``sql.normalized``, cached) and counted per watched span, on
whichever of its threads it runs. The ``OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE``-th
run of one statement adds one ``slowstack.n_plus_one`` event at once, slow
request or not, carrying the stack of the code that issued it: taken from the
thread ending the span, which is the thread that ran the query, at that
moment, for the price of one walk up its frames. Both the statements tracked
and the events per span are capped, so a request issuing a million distinct
statements holds no more than ``MAX_STATEMENTS`` of them.
"""

from __future__ import annotations

import itertools
import sys
from contextvars import ContextVar
from types import FrameType
from typing import Any, Optional

from otel_slowstack.capture.entry import entry_candidates, find_entry
from otel_slowstack.capture.frames import frame_lines
from otel_slowstack.capture.machinery import is_carrier
from otel_slowstack.capture.stacktrace import format_stack
from otel_slowstack.conventions import (
    CODE_STACKTRACE,
    DB_COUNT,
    DB_DURATION_MS,
    DB_QUERY_TEXT,
    DB_STATEMENT,
    DB_SYSTEM,
    DB_SYSTEM_NAME,
    HTTP_COUNT,
    HTTP_DURATION_MS,
    HTTP_METHOD,
    HTTP_REQUEST_METHOD,
    N_PLUS_ONE_EVENT,
    REPEAT_COUNT,
)
from otel_slowstack.lifecycle import quiet
from otel_slowstack.lifecycle.realthread import get_ident
from otel_slowstack.sample import stack_budget
from otel_slowstack.settings import Settings
from otel_slowstack.sql import MAX_STATEMENT_CHARS, normalized, normalized_short
from otel_slowstack.watched import Watched

#: Distinct normalised statements counted per watched span; later ones are not.
MAX_STATEMENTS = 200
#: ``slowstack.n_plus_one`` events per watched span at most: the SDK keeps 128
#: events per span and drops the oldest, which would be the samples.
MAX_REPEAT_EVENTS = 20


class ThreadCalls:
    """One thread's calls under one watched span; written by that thread only."""

    __slots__ = ("db_count", "db_ns", "http_count", "http_ns", "db_last")

    def __init__(self) -> None:
        self.db_count = self.db_ns = self.http_count = self.http_ns = 0
        #: (start, end, statement) of the last database call counted here
        self.db_last: Optional[tuple] = None


class Calls:
    """The calls counted under one watched span, one record per thread."""

    __slots__ = ("by_thread", "statements", "repeats_reported")

    def __init__(self) -> None:
        self.by_thread: dict[int, ThreadCalls] = {}
        #: normalised statement -> a counter of its runs, on any of the request's
        #: threads (``next()`` on it is atomic: exactly one run is the N-th)
        self.statements: dict[str, Any] = {}
        #: ``slowstack.n_plus_one`` events added so far (a lost increment is harmless)
        self.repeats_reported = 0

    def totals(self) -> tuple:
        """``(db_count, db_ns, http_count, http_ns)`` over every thread."""
        db_count = db_ns = http_count = http_ns = 0
        for calls in list(self.by_thread.values()):
            db_count += calls.db_count
            db_ns += calls.db_ns
            http_count += calls.http_count
            http_ns += calls.http_ns
        return db_count, db_ns, http_count, http_ns

    def release(self) -> None:
        self.statements = {}
        for calls in list(self.by_thread.values()):
            calls.db_last = None


def total_attributes(totals: tuple) -> dict:
    """The span attributes for the totals; only the kinds of call that were made."""
    db_count, db_ns, http_count, http_ns = totals
    attributes: dict = {}
    if db_count:
        attributes[DB_COUNT] = db_count
        attributes[DB_DURATION_MS] = db_ns / 1e6
    if http_count:
        attributes[HTTP_COUNT] = http_count
        attributes[HTTP_DURATION_MS] = http_ns / 1e6
    return attributes

#: True while the code running is not the watched span's own work although
#: it runs under it: Celery's result backend storing a task's outcome after
#: the task returned (set by ``celery_hooks``). Client spans ending then are
#: not counted.
not_counted: ContextVar = ContextVar("otel_slowstack_not_counted", default=False)


def child_ended(watched: Watched, span: Any, settings: Settings) -> None:
    """Count an ended CLIENT descendant of ``watched`` (the caller checked the kind).

    Inlined on purpose: this runs for every database and HTTP call a
    request makes, so it reads each field once (the SDK span's own fields,
    ``seams.SPAN_FIELDS_READABLE``) and calls nothing on the common path
    but the statement's normalisation, itself cached.
    """
    attributes = span._attributes._dict
    if DB_SYSTEM_NAME in attributes or DB_SYSTEM in attributes:
        is_db = True
    elif HTTP_REQUEST_METHOD in attributes or HTTP_METHOD in attributes:
        is_db = False
    else:
        return
    if not_counted.get():
        return  # calls made for the span, not by it (a task's result backend)
    calls = watched.calls
    if calls is None:
        calls = vars(watched).setdefault("calls", Calls())
    ident = get_ident()
    mine = calls.by_thread.get(ident)
    if mine is None:
        mine = calls.by_thread.setdefault(ident, ThreadCalls())
    start, end = span._start_time, span._end_time
    duration = end - start if start and end else 0
    if not is_db:
        mine.http_count += 1
        mine.http_ns += duration
        return
    text = attributes.get(DB_QUERY_TEXT) or attributes.get(DB_STATEMENT)
    if type(text) is str and text:
        key = normalized_short(text) if len(text) <= MAX_STATEMENT_CHARS else normalized(text)
    else:
        key = None
    last = mine.db_last
    if last is not None and start < last[0] and last[1] <= end and (key is None or last[2] is None or key == last[2]):
        # This span encloses the last call counted on this thread: the same
        # call seen from higher up (an ORM's span around the driver's).
        mine.db_last = (start, end, key if key is not None else last[2])
        return
    mine.db_last = (start, end, key)
    mine.db_count += 1
    mine.db_ns += duration
    threshold = settings.n_plus_one
    if key is None or threshold is None:
        return
    counter = calls.statements.get(key)
    if counter is None:
        if len(calls.statements) >= MAX_STATEMENTS:
            return
        counter = calls.statements.setdefault(key, itertools.count(1))
    if next(counter) == threshold and calls.repeats_reported < MAX_REPEAT_EVENTS:
        calls.repeats_reported += 1
        _report_repeat(watched, key, threshold, settings)


def _report_repeat(watched: Watched, key: str, count: int, settings: Settings) -> None:
    root = watched.span
    if root is None or watched.ended:
        return
    stack = issuing_stack(watched, settings, stack_budget(root, settings))
    attributes = {DB_QUERY_TEXT: key, REPEAT_COUNT: count, CODE_STACKTRACE: stack}
    with quiet.quietly():
        root.add_event(N_PLUS_ONE_EVENT, attributes)


# -- the stack of the code issuing a statement ---------------------------------

#: Frames that only carry the span (instrumentation, the SDK, this package):
#: ``capture.machinery`` decides.
_is_carrier = is_carrier


def issuing_stack(watched: Watched, settings: Settings, max_bytes: int) -> str:
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
    starter = watched.starter  # read once: the span may end meanwhile
    if starter is not None and watched.ident == get_ident():
        entry = find_entry(frame, entry_candidates(starter))
    lines = frame_lines(frame, entry)
    del frame, entry
    return format_stack(lines, settings.max_frames, max_bytes)
