"""From live frame objects to plain ``FrameLine`` data.

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
from types import FrameType
from typing import Optional, Pattern

from . import afterfork
from .local_variables import local_lines
from .stacktrace import FrameLine

#: Frames turned into data at most: the entry and the innermost ones. Deeper
#: stacks (a runaway recursion) keep both ends, the middle counted as elided.
MAX_WALK = 4096
#: Local variables are rendered for this many application frames at most.
MAX_FRAMES_WITH_LOCALS = 8
#: ``FrameLine`` built straight from a tuple: a sample makes one per frame.
_FRAME_LINE = tuple.__new__


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
_app_cache: dict[str, bool] = {}


def is_app_file(filename: str) -> bool:
    """True for the application's own source files."""
    known = _app_cache.get(filename)
    if known is None:
        known = not (
            filename.startswith("<")
            or "site-packages" in filename
            or "dist-packages" in filename
            or filename.startswith(_LIBRARY_ROOTS)
        )
        if len(_app_cache) > 4096:
            _app_cache.clear()
        _app_cache[filename] = known
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
    """
    lines: list = []
    with_locals = MAX_FRAMES_WITH_LOCALS if redact is not None else 0
    elided = len(frames) - MAX_WALK
    kept = frames if elided <= 0 else frames[-(MAX_WALK - 1):]
    for frame in reversed(kept):
        code = frame.f_code
        filename = code.co_filename
        app = is_app_file(filename)
        local = ()
        if with_locals and app:
            local = local_lines(frame, redact)
            with_locals -= 1
        lines.append(_FRAME_LINE(FrameLine, (filename, _lineno(frame), code.co_name, app, local, 0)))
    if elided > 0:  # a runaway recursion: keep the entry, count the middle
        lines[-1] = lines[-1]._replace(elided_before=elided)
        entry = frames[0]
        code = entry.f_code
        app = is_app_file(code.co_filename)
        lines.append(_FRAME_LINE(FrameLine, (code.co_filename, _lineno(entry), code.co_name, app, (), 0)))
    lines.reverse()
    return lines


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
        return sys._current_frames()
    afterfork.warn_unreadable()
    return {}
