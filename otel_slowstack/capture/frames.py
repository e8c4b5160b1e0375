"""From live frame objects to plain ``FrameLine`` data.

Only code objects and instruction offsets are read from live frames (under
the consistent snapshot of ``current_frames``); text comes from caches per
(code, offset) and per whole stack. Also the walks the owners share:
``current_frames`` (the one way other threads' frames are read) and
``frames_between``. Runs on the watchdog thread, and on a request thread for
an N+1 event's stack (``counters``).

Also decides which frames are the application's own: anything that is not
the standard library, an installed package (site-packages, dist-packages) or
generated code. Application frames are kept first when a stack must be
shortened, and only they may carry local variables.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from operator import attrgetter
from operator import is_ as _is
from types import FrameType
from typing import Optional, Pattern

from otel_slowstack import seams
from otel_slowstack.capture.entry import frames_from_entry
from otel_slowstack.capture.local_variables import local_lines
from otel_slowstack.capture.stacktrace import FrameLine
from otel_slowstack.lifecycle import afterfork
from otel_slowstack.lru import LRU

#: Frames turned into data at most: the entry and the innermost ones. Deeper
#: stacks (a runaway recursion) keep both ends, the middle counted as elided.
MAX_WALK = 4096
#: Local variables are rendered for this many application frames at most.
MAX_FRAMES_WITH_LOCALS = 8
#: ``FrameLine`` built straight from a tuple: a sample makes one per frame.
_FRAME_LINE = tuple.__new__
_F_CODE = attrgetter("f_code")
_F_LASTI = attrgetter("f_lasti")


def _library_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
            roots.add(path)
    try:
        for path in site.getsitepackages() + [site.getusersitepackages()]:
            roots.add(path)
    except Exception:  # virtualenv's old site.py, embedded interpreters
        pass
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return tuple(sorted((r.rstrip(os.sep) + os.sep for r in roots), key=len))


_LIBRARY_ROOTS = _library_roots()
#: filename -> is it the application's own.
_app_files: LRU[bool] = LRU(4096)
#: (id(code), offset) -> (code, FrameLine without locals): a sample makes one per frame.
_frame_lines: LRU[tuple] = LRU(8192)
#: Instruction offsets of a stack -> (its codes, its FrameLines): a stack seen
#: before (the next slow request parked in the same code) is one lookup and
#: one C-level pass of identity checks (see ``lines_of``).
_stacks: LRU[tuple] = LRU(128)
#: Longer stacks (a runaway recursion) are not cached whole: rare, and large.
MAX_CACHED_STACK = 512


def is_app_file(filename: str) -> bool:
    """True for the application's own source files."""
    known = _app_files.get(filename)
    if known is None:
        known = not (
            filename.startswith("<")
            or "site-packages" in filename
            or "dist-packages" in filename
            or filename.startswith(_LIBRARY_ROOTS)
        )
        _app_files.put(filename, known)
    return known


def frame_lines(
    innermost: FrameType,
    stop_at: Optional[FrameType] = None,
    redact: Optional[Pattern[str]] = None,
) -> list:
    """Frames from ``stop_at`` (inclusive) inwards to ``innermost``, outermost first.

    With ``redact`` given, application frames carry their local variables.
    """
    innermost_first: list = []
    frame: Optional[FrameType] = innermost
    while frame is not None:
        innermost_first.append(frame)
        if frame is stop_at:
            break
        frame = frame.f_back
    innermost_first.reverse()
    return lines_of(innermost_first, redact)


def lines_of(frames: list, redact: Optional[Pattern[str]] = None) -> list:
    """Frame objects given outermost first (a walk up ``f_back``, or an await
    chain, which no ``f_back`` links) as ``FrameLine`` data.

    With ``redact`` given, the innermost application frames carry their
    local variables.

    What a frame shows depends only on its code object and its instruction
    offset (locals aside), so only those two are read from the live frames,
    in one quick pass, and everything else comes from caches: a line per
    (code, offset), and whole stacks, for the thread stuck where it was at
    the previous sample. On the watchdog thread, or a request thread
    (``counters``).
    """
    if redact is None and len(frames) <= MAX_CACHED_STACK:
        codes = list(map(_F_CODE, frames))
        key = tuple(map(_F_LASTI, frames))
        known = _stacks.get(key)
        # The same offsets in the very same code objects: the same lines.
        # Identity, not ``==``: a code object that is equal but not identical
        # (the same function in another file) differs in its file name.
        if known is not None and all(map(_is, codes, known[0])):
            return list(known[1])
        lines = _lines_without_locals(frames, codes, key)
        _stacks.put(key, (codes, tuple(lines)))
        return lines
    lines: list = []
    with_locals = MAX_FRAMES_WITH_LOCALS if redact is not None else 0
    elided = len(frames) - MAX_WALK
    kept = frames if elided <= 0 else frames[-(MAX_WALK - 1):]
    for frame in reversed(kept):
        line = _line_of(frame)
        if with_locals and line.is_app:
            # Values change from one sample to the next: never cached.
            line = line._replace(local_lines=local_lines(frame, redact))
            with_locals -= 1
        lines.append(line)
    if elided > 0:  # a runaway recursion: keep the entry, count the middle
        lines[-1] = lines[-1]._replace(elided_before=elided)
        lines.append(_line_of(frames[0]))
    lines.reverse()
    return lines


def _lines_without_locals(frames: list, codes: list, offsets: tuple) -> list:
    """``_line_of`` for every frame, inlined: a new stack is mostly lines seen before."""
    data = _frame_lines.data
    get, touch = data.get, data.move_to_end
    lines = []
    for frame, code, offset in zip(frames, codes, offsets):
        key = (id(code), offset)
        known = get(key)
        if known is not None and known[0] is code:
            try:
                touch(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
            lines.append(known[1])
        else:
            lines.append(_line_of(frame))
    return lines


def _line_of(frame: FrameType) -> FrameLine:
    """The frame's ``FrameLine`` without locals, cached per (code, offset).

    Keyed by ``id(code)``: hashing a code object hashes its constants and
    names. The entry keeps the code object, so its id is not reused while
    the entry lives, and a hit is checked by identity all the same.
    """
    code = frame.f_code
    offset = frame.f_lasti
    known = _frame_lines.get((id(code), offset))
    if known is not None and known[0] is code:
        return known[1]
    filename = code.co_filename
    line = _FRAME_LINE(FrameLine, (filename, _lineno(frame), code.co_name, is_app_file(filename), (), 0))
    _frame_lines.put((id(code), offset), (code, line))
    return line


def _lineno(frame: FrameType) -> int:
    """``f_lineno``, or, when the thread sits on an instruction with no line
    (a loop's backward jump, seen from another thread), the last line before it."""
    lineno = frame.f_lineno
    if lineno:
        return lineno
    last = frame.f_code.co_firstlineno
    try:
        offset = frame.f_lasti
        for start, _end, line in frame.f_code.co_lines():
            if start > offset:
                break
            if line is not None:
                last = line
    except Exception:
        pass
    return last


def current_frames() -> dict:
    """Every thread's innermost frame by ident (``sys._current_frames()``), or
    ``{}`` where reading them could crash the process.

    The one way otel-slowstack reads other threads' frames. ``{}`` means no
    stack can be taken: in a process forked without Python's after-fork
    cleanup (a uWSGI worker, see ``afterfork``), where some thread states
    belong to threads that no longer exist and point into reused memory.
    """
    if afterfork.frames_readable():
        return _current_frames()
    afterfork.warn_unreadable()
    return {}


_current_frames = seams.current_frames


def frames_between(innermost: Optional[FrameType], outer: Optional[FrameType]) -> Optional[list]:
    """Frames from ``outer`` inwards to ``innermost``, outermost first; None if
    ``outer`` is not on that stack. No depth limit: ``lines_of`` shortens a
    runaway recursion, keeping both ends."""
    if outer is None:
        return None
    return frames_from_entry(innermost, {id(outer): outer})
