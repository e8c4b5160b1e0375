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
from typing import NamedTuple, Sequence


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
    return len(line.encode("utf-8", "surrogatepass")) + 1


def _gap_cost(count: int) -> int:
    """Bytes of the marker line for ``count`` elided frames (none for zero)."""
    return 27 + len(str(count)) if count > 0 else 0


def _priority(frames: Sequence[FrameLine]) -> list[int]:
    last = len(frames) - 1
    order = [last] + ([0] if last > 0 else [])
    order += [i for i in range(last - 1, 0, -1) if frames[i].is_app]
    chosen = set(order)
    order.extend(i for i in range(last - 1, 0, -1) if i not in chosen)
    return order


def format_stack(
    frames: Sequence[FrameLine], max_frames: int, max_bytes: int
) -> str:
    """Frames (outermost first) → traceback text within both limits."""
    if not frames:
        return ""
    # Each frame's position in the whole stack, counting frames dropped before formatting.
    positions: list[int] = []
    position = -1
    for frame in frames:
        position += frame.elided_before + 1
        positions.append(position)
    n = position + 1
    texts = [frame.text() for frame in frames]
    sizes = [_size(text) for text in texts]
    # The joined value has no final newline, so one byte of slack.
    budget = max_bytes + 1
    if n <= max_frames and sum(sizes) <= budget and not any(f.local_lines for f in frames):
        return "\n".join(texts)
    smallest = min(sizes)
    kept: list[int] = []
    used = _gap_cost(n)  # with nothing kept, everything is one elided run
    for index in _priority(frames):
        if len(kept) >= max_frames or used + smallest > budget:
            break
        pos = bisect_left(kept, index)
        before = positions[kept[pos - 1]] if pos else -1
        after = positions[kept[pos]] if pos < len(kept) else n
        at = positions[index]
        cost = (
            sizes[index]
            + _gap_cost(at - before - 1)
            + _gap_cost(after - at - 1)
            - _gap_cost(after - before - 1)
        )
        if used + cost <= budget:
            kept.insert(pos, index)
            used += cost
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
