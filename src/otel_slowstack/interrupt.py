"""Interrupting a request before the server kills the whole worker.

With ``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER`` set (below the server's own
timeout), a watched span still running at that age gets a last sample
(``slowstack.trigger=interrupt``) and then ``SlowRequestInterrupted`` is
raised inside the code that runs it, through ``owner.interrupt`` (for a
thread: ``PyThreadState_SetAsyncExc``). The exception unwinds the request
like any other error: the framework answers 500, ``with`` blocks and
``except``/``finally`` clauses roll transactions back, the instrumentation
records the exception on the span, and the worker serves the next request.

A thread blocked inside a C call (``time.sleep``, a socket read, a database
driver waiting for the server) sees the exception only when that call
returns; code that catches ``Exception`` and carries on swallows it.

The one thing that must never happen is an exception landing in a thread
that has finished the span and moved on, in the server's loop or the next
request. The watchdog decides and the owning thread ends its span at the
same time, so the two meet through ``Watched.interrupt_state``: the watchdog
marks ``DECIDING`` before it checks that the span is still open, and
``SENT`` once the exception is on its way; the owning thread, in ``on_end``,
after marking the span ended, waits out a decision in progress and takes
back an exception that has not landed yet (``settle``).
"""

from __future__ import annotations

import time
from typing import Any

IDLE = 0
DECIDING = 1
SENT = 2

#: Longest the owning thread waits for the watchdog to finish deciding; the
#: decision is a few attribute reads and one C call.
SETTLE_WAIT_S = 1.0


class SlowRequestInterrupted(TimeoutError):
    """Raised inside a request that ran past ``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER``."""

    def __init__(self, *args: Any) -> None:
        # Raised from outside, the class is instantiated without arguments.
        super().__init__(*(args or ("the request ran past OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER",)))


def interrupt(watched: Any, span: Any) -> bool:
    """Raise ``SlowRequestInterrupted`` in the owner of ``watched``, if it still serves the span."""
    owner = watched.owner
    if owner is None:
        return False
    watched.interrupt_state = DECIDING
    sent = False
    try:
        if watched.ended or getattr(span, "end_time", None) is not None:
            return False
        sent = bool(owner.interrupt(SlowRequestInterrupted))
        return sent
    finally:
        watched.interrupt_state = SENT if sent else IDLE


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
