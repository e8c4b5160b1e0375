"""Formatting a captured stack into one bounded ``code.stacktrace`` value.

Pure functions: frames in, text out. The text is Python traceback form
(``  File "PATH", line N, in NAME``, most recent call last). When the stack
does not fit in ``max_frames`` frames and ``max_bytes`` bytes, frames are
kept in this order of priority: the innermost frame (where the time is
going), the outermost frame (the span's entry point: together they say what
is stuck where, even in a runaway recursion), the application's own frames
from the innermost outwards, then library frames from the innermost outwards. Each run of dropped frames becomes one line
``  [... N frames elided ...]``, so a reader always sees what is missing and
neither the SDK nor a backend has to cut the value blindly.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from operator import attrgetter
from typing import NamedTuple, Sequence

from otel_slowstack.lru import LRU


class FrameLine(NamedTuple):
    """One frame as plain data: what a traceback line needs, nothing live."""

    filename: str
    lineno: int
    name: str
    is_app: bool
    local_lines: tuple = ()
    #: Frames dropped just outside this one before formatting (a recursion
    #: deeper than the capture keeps); shown with the other elisions.
    elided_before: int = 0

    def text(self) -> str:
        return f'  File "{self.filename}", line {self.lineno}, in {self.name}'


def elision_line(count: int) -> str:
    return f"  [... {count} frames elided ...]"


def _size(line: str) -> int:
    """Bytes the line takes in the joined value, with its newline."""
    if line.isascii():  # nearly always: no encoding needed to count
        return len(line) + 1
    return len(line.encode("utf-8", "surrogatepass")) + 1


def _gap_cost(count: int) -> int:
    """Bytes of the marker line for ``count`` elided frames (none for zero)."""
    return 27 + len(str(count)) if count > 0 else 0


_IS_APP = attrgetter("is_app")
_ELIDED_BEFORE = attrgetter("elided_before")


def _priority(frames: Sequence[FrameLine]) -> list[int]:
    last = len(frames) - 1
    order = [last] + ([0] if last > 0 else [])
    flags = list(map(_IS_APP, frames))
    app = [i for i in range(last - 1, 0, -1) if flags[i]]
    order += app
    if len(app) < last - 1:
        order += [i for i in range(last - 1, 0, -1) if not flags[i]]
    return order


#: (len, limits, ids of the outermost and innermost lines) -> (lines, text).
#: The text is a pure function of the lines' values, and a hit is checked
#: value for value (identity first, so a stuck thread's unchanged stack
#: costs one C-level list comparison): never a stale or foreign text.
_formatted: LRU[tuple] = LRU(128)
#: Stacks of more frames are formatted every time (a runaway recursion: rare).
MAX_CACHED_FRAMES = 512


def format_stack(
    frames: Sequence[FrameLine], max_frames: int, max_bytes: int
) -> str:
    """Frames (outermost first) → traceback text within both limits."""
    if not frames:
        return ""
    n_lines = len(frames)
    if n_lines > MAX_CACHED_FRAMES:
        return _format(frames, max_frames, max_bytes)
    key = (n_lines, max_frames, max_bytes, id(frames[0]), id(frames[-1]))
    lines = frames if type(frames) is list else list(frames)
    known = _formatted.get(key)
    if known is not None and known[0] == lines:
        return known[1]
    text = _format(lines, max_frames, max_bytes)
    if not any(frame.local_lines for frame in lines):  # values change: not worth keeping
        _formatted.put(key, (lines[:], text))
    return text


def _format(frames: Sequence[FrameLine], max_frames: int, max_bytes: int) -> str:
    # Each frame's position in the whole stack, counting frames dropped before formatting.
    elided = list(map(_ELIDED_BEFORE, frames))
    positions: Sequence[int]
    if any(elided):
        positions = [p - 1 for p in accumulate(e + 1 for e in elided)]
    else:
        positions = range(len(frames))
    n = positions[-1] + 1
    texts = [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
    sizes = [len(t) + 1 if t.isascii() else _size(t) for t in texts]
    # The joined value has no final newline, so one byte of slack.
    budget = max_bytes + 1
    if n <= max_frames and sum(sizes) <= budget and not any(f.local_lines for f in frames):
        return "\n".join(texts)
    smallest = min(sizes)
    kept: list[int] = []
    count = 0
    used = widest = _gap_cost(n)  # with nothing kept, everything is one elided run
    for index in _priority(frames):
        if count >= max_frames or used + smallest > budget:
            break
        size = sizes[index]
        if used + size - widest > budget:
            continue  # cannot fit even if it spared the widest marker there can be
        pos = bisect_left(kept, index)
        at = positions[index]
        before = positions[kept[pos - 1]] if pos else -1
        after = positions[kept[pos]] if pos < count else n
        # Kept, it splits one elided run (or its marker) into up to two.
        left = at - before - 1
        right = after - at - 1
        merged = left + right + 1
        # ``_gap_cost`` inlined: this loop is most of a new stack's formatting.
        cost = size - (28 if merged < 10 else 29 if merged < 100 else 27 + len(str(merged)))
        if left:
            cost += 28 if left < 10 else 29 if left < 100 else 27 + len(str(left))
        if right:
            cost += 28 if right < 10 else 29 if right < 100 else 27 + len(str(right))
        if used + cost <= budget:
            kept.insert(pos, index)
            used += cost
            count += 1
    if not kept:
        return _squeeze(texts[-1], n - 1, max_bytes)
    with_locals = _fit_locals(frames, kept, budget - used)
    lines: list[str] = []
    previous = -1
    for index in kept:
        at = positions[index]
        if at - previous > 1:
            lines.append(elision_line(at - previous - 1))
        lines.append(texts[index])
        lines.extend(with_locals.get(index, ()))
        previous = at
    if n - 1 - previous > 0:
        lines.append(elision_line(n - 1 - previous))
    return "\n".join(lines)


def _fit_locals(
    frames: Sequence[FrameLine], kept: list[int], room: int
) -> dict[int, list[str]]:
    """Local-variable lines for kept app frames, innermost first, while room lasts."""
    result: dict[int, list[str]] = {}
    for index in reversed(kept):
        for line in frames[index].local_lines:
            cost = _size(line)
            if cost > room:
                return result
            result.setdefault(index, []).append(line)
            room -= cost
    return result


def _squeeze(line: str, elided: int, max_bytes: int) -> str:
    """Not even one frame fits: shorten the innermost line from the left."""
    marker = elision_line(elided) + "\n" if elided else ""
    room = max_bytes - len(marker.encode())
    data = line.encode("utf-8", "surrogatepass")
    if len(data) > room:
        data = b"  ..." + data[len(data) - room + 5 :]
    return marker + data.decode("utf-8", "ignore")
