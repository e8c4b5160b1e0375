"""Renderers: a ``Report`` in, text out. One module per format.

``FORMATS`` is the one list of them (the CLI offers it as ``--format``).
Each renderer's module is imported only when its format is asked for, so
importing this package costs nothing and needs no extra.
"""

from __future__ import annotations

#: Every output format, the default first.
FORMATS = ("text", "folded", "speedscope", "html")


def render(report, fmt: str, color: bool = False, width: int = 120, top: int = 10) -> str:
    if fmt == "text":
        from .text import render_text

        return render_text(report, color=color, width=width, top=top)
    if fmt == "folded":
        from .folded import render_folded

        return render_folded(report)
    if fmt == "speedscope":
        from .speedscope import render_speedscope

        return render_speedscope(report)
    if fmt == "html":
        from .html import render_html

        return render_html(report, top=top)
    raise ValueError(f"unknown format {fmt!r}")
