"""Where a span's own code begins on its thread's stack.

``on_start`` walks a few frames outwards past the span-creation machinery
(the SDK, the API, ``contextlib``) to the frame that started the span (the
WSGI middleware's ``__call__``, a ``with`` block in the application) and
keeps that one frame. It must walk then: the SDK's context managers are
generators, whose frames lose their link to the caller once suspended.
Frames outside the entry (server plumbing) are dropped from samples.

Some instrumentations start the span in a hook that returns before the
request's work begins (Flask's ``before_request``, Django's
``process_request``). For a starter frame inside an OpenTelemetry package a
few of its callers are therefore accepted too, the innermost one still on
the stack marking the entry. For any other starter the frame itself must
still be on the stack.

If no accepted frame is on the owning thread's stack any more, the thread has
moved on to other work and the sample is skipped rather than misleading.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Optional

#: Modules whose frames only create or activate spans.
_MACHINERY = (
    "opentelemetry.sdk",
    "opentelemetry.trace",
    "opentelemetry.context",
    "opentelemetry.util",
    "opentelemetry.attributes",
    "contextlib",
    "otel_slowstack",
)
#: Callers of a hook-style instrumentation frame that may mark the entry.
HOOK_REACH = 4
_WALK_LIMIT = 32


def _module(frame: FrameType) -> str:
    name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) else ""


#: id(code object) -> (code object, whether it belongs to the machinery); call sites are few.
_machinery_codes: dict = {}


def _start_span_code() -> Any:
    try:
        from opentelemetry.sdk.trace import Tracer

        return Tracer.start_span.__code__
    except Exception:  # a different SDK layout: the slow path only
        return None


_START_SPAN = _start_span_code()


def starter_of_span_being_started() -> Optional[FrameType]:
    """``find_starter`` as called from ``SpanProcessor.on_start``, for less.

    Every frame looked at costs a frame object. With the SDK's usual path
    (``Tracer.start_span`` → ``Span.start`` → the multi-processor → us) the
    first three are known, so the walk starts right above ``start_span``.
    """
    try:
        frame = sys._getframe(4)  # 0 here, 1 on_start, 2 multi-processor, 3 Span.start
    except ValueError:
        frame = None
    if frame is not None and frame.f_code is _START_SPAN:
        return find_starter(frame.f_back)
    return find_starter(sys._getframe(2))


def find_starter(frame: Optional[FrameType]) -> Optional[FrameType]:
    """The first frame outwards from ``frame`` that is not span-creation machinery."""
    steps = 0
    codes = _machinery_codes
    while frame is not None and steps < _WALK_LIMIT:
        code = frame.f_code
        # Keyed by id: a code object hashes its whole content (about 0.3 µs a
        # lookup, on every span); the entry keeps the code alive, so its id
        # cannot be reused while the entry is there.
        known = codes.get(id(code))
        if known is None or known[0] is not code:
            known = (code, _module(frame).startswith(_MACHINERY))
            if len(codes) > 4096:
                codes.clear()
            codes[id(code)] = known
        if not known[1]:
            return frame
        frame = frame.f_back
        steps += 1
    return None


def entry_candidates(starter: Optional[FrameType]) -> dict:
    """``id(frame) -> frame`` for the frames that may mark the span's entry."""
    frame = starter
    if frame is None:
        return {}
    reach = HOOK_REACH if _module(frame).startswith("opentelemetry.") else 0
    candidates = {}
    while frame is not None and reach >= 0:
        candidates[id(frame)] = frame
        frame = frame.f_back
        reach -= 1
    return candidates


def find_entry(innermost: Optional[FrameType], candidates: dict) -> Optional[FrameType]:
    """The innermost candidate frame on the stack ending in ``innermost``.

    The walk has no depth limit: a runaway recursion tens of thousands of
    frames deep is exactly the span that must still be found (a stack is
    finite, and the walk happens only when a sample is due).
    """
    frame = innermost
    while frame is not None:
        if id(frame) in candidates and candidates[id(frame)] is frame:
            return frame
        frame = frame.f_back
    return None
