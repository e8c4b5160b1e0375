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

``find_starter`` runs on the request's thread in ``on_start`` (what counts as
span-creation machinery is ``machinery.py``'s to say); the rest on the
watchdog thread when a sample is due, and on an interrupted owner's thread.
"""

from __future__ import annotations

from types import FrameType
from typing import Any, Optional

from otel_slowstack.capture import machinery
from otel_slowstack.capture.machinery import OPENTELEMETRY, SPAN_MACHINERY

#: Callers of a hook-style instrumentation frame that may mark the entry.
HOOK_REACH = 4
_WALK_LIMIT = 32
_module_flags = machinery.module_flags


def find_starter(frame: Optional[FrameType]) -> Optional[FrameType]:
    """The first frame outwards from ``frame`` that is not span-creation machinery.

    ``SlowStackProcessor.on_start`` starts the walk itself, right above
    ``Tracer.start_span`` (every frame looked at costs a frame object), and
    calls this only when that first frame is machinery too.
    """
    steps = 0
    try:
        while frame is not None and steps < _WALK_LIMIT:
            # ``machinery.is_span_machinery``, inlined: on every watched span's start.
            if not _module_flags(frame.f_globals.get("__name__")) & SPAN_MACHINERY:
                return frame
            frame = frame.f_back
            steps += 1
    except TypeError:  # a ``__name__`` that cannot be hashed: not machinery
        return frame
    return None


def entry_candidates(starter: Optional[FrameType]) -> dict:
    """``id(frame) -> frame`` for the frames that may mark the span's entry."""
    frame = starter
    if frame is None:
        return {}
    reach = HOOK_REACH if machinery.flags_of(frame) & OPENTELEMETRY else 0
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


def frames_from_entry(innermost: Optional[FrameType], candidates: dict) -> Optional[list]:
    """``find_entry`` and the frames from that entry inwards to ``innermost``
    (outermost first) in one walk; None if no candidate is on the stack."""
    stack: list = []
    append = stack.append
    get = candidates.get
    frame = innermost
    while frame is not None:
        append(frame)
        if get(id(frame)) is frame:
            stack.reverse()
            return stack
        frame = frame.f_back
    return None


def entry_index(frames: list, candidates: dict) -> Optional[int]:
    """Index of the innermost frame of ``frames`` (outermost first: an await
    chain, which no ``f_back`` links) that may mark the span's entry."""
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        if candidates.get(id(frame)) is frame:
            return index
    return None


def candidates_of(owner: Any) -> Optional[dict]:
    """An owner's entry candidates, worked out on first use; None once released.

    Read and written through locals only: the watchdog calls this while the
    request's thread may be running ``release()``, which clears both
    ``owner._candidates`` and ``owner.starter``.
    """
    candidates = owner._candidates
    if candidates is None:
        starter = owner.starter
        if starter is None:
            return None
        candidates = owner._candidates = entry_candidates(starter)
    return candidates
