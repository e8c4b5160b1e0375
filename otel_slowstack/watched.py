"""The record of one watched span in flight, and which thread touches what.

``Watched`` is made in the span's own ``on_start`` and holds only what was
known then: the span, when it started, its threshold, the thread (or task or
greenlet) that started it and the frame where its code begins. That is all a
span that never becomes slow costs: one object, no dictionary of its own
until a child span starts under it. The other concerns hang off it, each
made only when needed and each with its own writers:

==================  =====================================  =========================
part                written by                              read by
==================  =====================================  =========================
the record          its own thread in ``on_start``;         everyone
                    ``threshold_ns`` re-matched once by
                    the watchdog (late ``http.route``)
``ended``           the thread ending the span, first       every reader checks it
``children``        any thread starting or ending one of    the watchdog
                    its descendants (``span_id -> span``)   (``slowstack.in_flight``)
``calls``           any thread ending one of its client     the watchdog (samples),
                    calls: one ``counters.ThreadCalls``     the ending thread (totals)
                    each (``counters.py``)
``timeline``        the watchdog (``schedule.Timeline``)    the watchdog
``fired``           the watchdog, when the span moves to    the ending thread
                    its heap
``owner``           the watchdog, when first asked for a    the watchdog, interrupts
                    plain thread's (``capture/owners.py``)
``interrupt_state`` the watchdog and the span's own         both (``interrupt.py``)
                    thread, in turn
==================  =====================================  =========================

Every field is a single reference written in one store, so a reader on
another thread sees either the old value or the new one.
"""

from __future__ import annotations

from types import FrameType
from typing import Any, Optional


class Watched:
    """A watched span in flight: what ``on_start`` knew, and the parts made later."""

    fired = False  # the watchdog has handled it once: it lives in the schedule's heap now
    ended = False
    timeline: Any = None  # schedule.Timeline, once the span was first due
    calls: Any = None  # counters.Calls, once a client call under it has ended
    children: Optional[dict] = None
    interrupt_state = 0  # see interrupt.py: IDLE, DECIDING, SENT
    #: The starter frame's instruction when the span started; read in
    #: ``on_start`` only when interrupts are on (see ``interrupt.scoped``).
    start_lasti = -1
    _owner: Any = None

    def __init__(
        self,
        span: Any,
        span_id: int,
        start_ns: int,
        threshold_ns: Optional[int],
        ident: int,
        starter: Optional[FrameType],
    ) -> None:
        self.span = span
        self.span_id = span_id
        self.start_ns = start_ns
        self.threshold_ns = threshold_ns
        self.ident = ident  # the thread that started the span
        self.starter = starter

    @property
    def owner(self) -> Any:
        """Who runs the span's code; None once the span has ended."""
        owner = self._owner
        if owner is None and not self.ended:
            from otel_slowstack.capture.owners import ThreadOwner

            owner = self._owner = ThreadOwner(self.ident, self.starter, self.start_lasti)
        return owner

    def open_children(self) -> dict:
        """The descendants dictionary, made by whichever thread starts the first
        (``setdefault``: two threads starting one at once share one)."""
        children = self.children
        if children is None:
            children = vars(self).setdefault("children", {})
            if children is None:  # released by the span's end meanwhile: nothing to track
                return {}
        return children

    def release(self) -> None:
        """The span has ended: drop every reference to live objects."""
        owner = self._owner
        self.span = self._owner = self.starter = None
        self.children = None
        calls = self.calls
        if calls is not None:
            calls.release()
        if owner is not None:
            owner.release()
