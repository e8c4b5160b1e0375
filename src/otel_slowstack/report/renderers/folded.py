"""Folded stacks: ``route;outer;...;inner COUNT`` per line.

The input of flamegraph.pl, inferno and speedscope's import. The route is
the root frame, so one picture holds every route side by side.
"""

from __future__ import annotations

from ..stacks import Frame


def frame_name(frame: Frame) -> str:
    return _clean(frame.label())


def _clean(text: str) -> str:
    # ';' separates frames and the last space separates the count.
    return " ".join(text.replace(";", ":").split())


def render_folded(report) -> str:
    lines = []
    for route in report.routes:
        root = _clean(route.route)
        for stack, count in sorted(route.stacks.items(), key=lambda item: (-item[1], [f.label() for f in item[0]])):
            lines.append(";".join([root] + [frame_name(f) for f in stack]) + f" {count}")
    return "\n".join(lines) + ("\n" if lines else "")
