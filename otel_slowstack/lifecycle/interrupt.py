"""Interrupting a request before the server kills the whole worker.

With ``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER`` set (below the server's own
timeout), a watched span still running at that age gets a last sample
(``slowstack.trigger=interrupt``) and then ``SlowRequestInterrupted`` is
raised inside the code that runs it. The exception unwinds the request like
any other error: the framework answers 500, ``with`` blocks and
``except``/``finally`` clauses roll transactions back, the instrumentation
records the exception on the span, and the worker serves the next request.

How it gets there depends on who runs the span:

- the main thread (gunicorn's sync worker, ``python app.py``): a signal
  (``interrupt_signal.py``), so a blocking call (``time.sleep``, a socket
  read, ``select``/``poll``) returns at once and raises where it was called;
- any other thread: ``PyThreadState_SetAsyncExc``, seen at the thread's next
  bytecode, so a thread blocked in a C call sees it when that call returns;
- an asyncio task or a greenlet: at its innermost ``await`` or switch (see
  ``task_owner.py``, ``greenlet_owner.py``).

Where it lands is the whole difficulty. It must land in the request's own
code: never in the instrumentation's enter/exit code (span creation,
``context.attach``/``detach``, ``start_response``, ``span.end``), never in the
server's loop, never after the span ended, never in a thread that merely
started a span someone else ends. ``landing_is_safe`` is that rule, applied
to the frames the exception would land in:

- the span's entry (where it was started) is still on the stack;
- the innermost frame that is not the standard library is the request's own
  code (the application or a library it calls), not OpenTelemetry, not
  otel-slowstack, not ``contextlib``, not the server;
- between it and the entry, OpenTelemetry frames are allowed only from an
  instrumentation that wraps a call (a database or HTTP client span around
  the call in progress), never the SDK, the API or the context.

A signal handler runs on the thread it lands in, so it applies the rule to the
very frame it interrupted and raises only if the rule holds; otherwise the
watchdog sends it again a little later. ``SetAsyncExc`` lands wherever the
target thread next checks for it: ``async_exception.send_parked`` applies the rule
while the target cannot move (see there), so the landing point is the one
that was checked.

A span started with ``start_span`` outside a ``with`` block on its thread
(a consumer loop that starts a span per message and hands it to a pool
thread that ends it) has no stack region that delimits it: its interrupt is
withheld, and its ``interrupt`` sample carries ``slowstack.interrupt.withheld``
with the reason. Which thread touches what: ``decide``, ``retry`` and
``deliver`` run on the watchdog thread; ``settle`` on the span's own thread in
``on_end``.
"""

from __future__ import annotations

import dis
import sys
import time
from types import FrameType
from typing import Any, Iterable, Optional

from otel_slowstack.capture.machinery import CODE
from otel_slowstack.capture.machinery import CONTEXTLIB_BODIES as _CONTEXTLIB_BODIES
from otel_slowstack.capture.machinery import INSTRUMENTATION, NEVER, STDLIB, landing_kind
from otel_slowstack.conventions import WITHHELD_UNSCOPED

IDLE = 0
DECIDING = 1
SENT = 2

#: Longest the owning thread waits for the watchdog to finish deciding; the
#: decision is a few attribute reads and one C call.
SETTLE_WAIT_S = 1.0

#: No safe landing point was found before ``MAX_TRIES`` retries ran out.
NO_SAFE_POINT = "no_safe_point"
#: Another try is due: the owner sits in instrumentation or server code now.
LATER = "later"

#: Time between two tries to find the owner in its own code.
RETRY_NS = 20_000_000
#: Tries before giving up (with ``RETRY_NS``: 30 seconds, longer than any
#: server timeout the interrupt is meant to beat).
MAX_TRIES = 1500


class SlowRequestInterrupted(TimeoutError):
    """Raised inside a request that ran past ``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER``."""

    def __init__(self, *args: Any) -> None:
        # Raised from outside, the class is instantiated without arguments.
        super().__init__(*(args or ("the request ran past OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER",)))


# -- where an exception may land --------------------------------------------

_OPENTELEMETRY = "opentelemetry."
#: Which frames are machinery (span and context bookkeeping, servers), and the
#: kinds below, are ``capture.machinery``'s to say.
_kind = landing_kind


def wraps_a_call(frame: FrameType) -> bool:
    """Whether ``frame`` is a wrapper that runs a call inside a span's ``with``
    (an instrumentation, a ``ContextDecorator``)."""
    kind = _kind(frame)
    return kind == INSTRUMENTATION or (kind == STDLIB and frame.f_code.co_name in _CONTEXTLIB_BODIES
                                        and frame.f_globals.get("__name__") == "contextlib")


def landing_is_safe(frames: Iterable[FrameType], entry: Optional[FrameType]) -> bool:
    """Whether an exception raised in ``frames`` (innermost first, outwards)
    would surface only in the request's own code below ``entry``."""
    if entry is None:
        return False
    own_code_below = False
    for frame in frames:
        kind = _kind(frame)
        if kind == NEVER:
            return False
        if kind == INSTRUMENTATION and not own_code_below:
            return False  # the instrumentation's own code is running, not a call it wraps
        if kind == CODE:
            own_code_below = True
        if frame is entry:
            return own_code_below
    return False


def outwards(innermost: Optional[FrameType]) -> Iterable[FrameType]:
    """``innermost`` and its callers, outwards (no limit: the entry bounds it)."""
    frame = innermost
    while frame is not None:
        yield frame
        frame = frame.f_back


# -- spans that no stack region delimits ------------------------------------

_BEFORE_WITH = frozenset(dis.opmap[name] for name in ("BEFORE_WITH", "SETUP_WITH", "BEFORE_ASYNC_WITH", "SETUP_ASYNC_WITH") if name in dis.opmap)


def scoped(starter: Optional[FrameType], start_lasti: int) -> bool:
    """Whether the span was started by a ``with`` statement of ``starter``
    (``with tracer.start_as_current_span(...)``), or by an instrumentation.

    A span started by a plain ``tracer.start_span(...)`` call in application
    code may be ended anywhere, by any thread: interrupting the thread that
    started it could break a consumer loop instead of the request.
    """
    if starter is None:
        return False
    name = starter.f_globals.get("__name__")
    if isinstance(name, str) and name.startswith(_OPENTELEMETRY):
        return True  # an instrumentation: it attaches, ends and detaches itself
    code = starter.f_code.co_code
    return 0 <= start_lasti < len(code) and code[start_lasti] in _BEFORE_WITH


# -- the watchdog's side ------------------------------------------------------


def decide(watched: Any) -> Optional[str]:
    """On the watchdog thread, at the interrupt's deadline: None to go ahead,
    or why the interrupt is withheld for good (``WITHHELD_UNSCOPED``)."""
    owner = watched.owner
    if owner is not None and not owner.scoped():
        return WITHHELD_UNSCOPED
    return None


def deliver(watched: Any, span: Any) -> str:
    """On the watchdog thread: raise ``SlowRequestInterrupted`` in the owner of
    ``watched`` if it is in its own code now. Returns ``"sent"``, ``LATER``
    (try again in ``RETRY_NS``) or a reason it is withheld for good."""
    owner = watched.owner
    if owner is None:
        return NO_SAFE_POINT
    teach_drivers()
    watched.interrupt_state = DECIDING
    sent = False
    try:
        if watched.ended or getattr(span, "end_time", None) is not None:
            return NO_SAFE_POINT
        def safe(frames: Iterable[FrameType], entry: Optional[FrameType]) -> bool:
            return not watched.ended and landing_is_safe(frames, entry)

        outcome = owner.interrupt(SlowRequestInterrupted, safe)
        sent = outcome is True
        if sent:
            return "sent"
        return LATER if outcome is None else NO_SAFE_POINT
    finally:
        watched.interrupt_state = SENT if sent else IDLE


#: Database drivers that cancel the query in progress on the server when
#: interrupted, but only for the exceptions they name: psycopg 3 (checked with
#: 3.1 to 3.3) names them in ``_INTERRUPTED`` (KeyboardInterrupt, SystemExit).
#: Without the cancel, a query waiting on a lock would go on waiting on the
#: server, holding the transaction's locks, after the request has answered.
_DRIVERS = ("psycopg.connection", "psycopg.connection_async")


def teach_drivers() -> None:
    """Add ``SlowRequestInterrupted`` to the exceptions drivers cancel the server-side query on."""
    for name in _DRIVERS:
        module = sys.modules.get(name)
        known = getattr(module, "_INTERRUPTED", None)
        if type(known) is tuple and SlowRequestInterrupted not in known:
            try:
                module._INTERRUPTED = known + (SlowRequestInterrupted,)  # type: ignore[union-attr]
            except Exception:  # a layout we do not know: the query is left to the server's timeouts
                pass


def retry(watched: Any, now_ns: int) -> bool:
    """Schedule another try; False once ``MAX_TRIES`` have been spent."""
    timeline = watched.timeline
    if timeline is None:
        return False
    timeline.interrupt_tries += 1
    if timeline.interrupt_tries >= MAX_TRIES:
        return False
    timeline.interrupt_at = now_ns + RETRY_NS
    return True


def settle(watched: Any) -> None:
    """On the owning thread, in ``on_end``: make sure no interrupt outlives the span."""
    try:
        deadline = time.monotonic() + SETTLE_WAIT_S
        while watched.interrupt_state == DECIDING and time.monotonic() < deadline:
            time.sleep(0.0005)
        if watched.interrupt_state == SENT:
            watched.interrupt_state = IDLE
            owner = watched.owner
            if owner is not None:
                owner.withdraw()
    except SlowRequestInterrupted:
        pass  # it landed here, at the very end of the span: nothing left to interrupt

