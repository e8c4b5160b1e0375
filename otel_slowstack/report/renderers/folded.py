"""Folded stacks: ``route;outer;...;inner COUNT`` per line.

The input of flamegraph.pl, inferno and speedscope's import. The route is
the root frame, so one picture holds every route side by side. The last
sample of a request that did not finish gets its outcome as a second root
frame (``GET /export;[killed];...``), so a flame graph shows the killed
pages as their own towers and ``grep -F '[killed]'`` finds them; counts
still add up to the number of samples.
"""

from __future__ import annotations

from collections import Counter

from ..printable import printable
from ..stacks import Frame


def frame_name(frame: Frame) -> str:
    return _clean(frame.label())


def _clean(text: str) -> str:
    # ';' separates frames and the last space separates the count.
    return printable(" ".join(text.replace(";", ":").split()))


def _order(item: tuple) -> tuple:
    return (-item[1], [f.label() for f in item[0]])


def render_folded(report) -> str:
    lines = []
    for route in report.routes:
        root = _clean(route.route)
        plain: Counter = Counter(route.stacks)
        marked: list = []
        for (outcome, stack), count in route.killed_stacks.items():
            if plain.get(stack, 0) >= count:  # else the stack went to "[other stacks]"
                plain[stack] -= count
                marked.append(((outcome, stack), count))
        for stack, count in sorted(((s, c) for s, c in plain.items() if c > 0), key=_order):
            lines.append(";".join([root] + [frame_name(f) for f in stack]) + f" {count}")
        for (outcome, stack), count in sorted(marked, key=lambda item: (item[0][0], -item[1])):
            lines.append(";".join([root, f"[{outcome}]"] + [frame_name(f) for f in stack]) + f" {count}")
    return "\n".join(lines) + ("\n" if lines else "")
