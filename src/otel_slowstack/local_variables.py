"""Local variables for samples: off by default, bounded and redacted when on.

Stacks can carry secrets, and a ``repr`` is arbitrary code (a lazy ORM query
set runs its query when printed). So values are rendered on the watchdog
thread without calling any application code: builtin types through a bounded
``reprlib``, anything else as ``<TypeName>``. Names matching the redaction
pattern, and dictionary entries whose key matches it, become ``[REDACTED]``.
"""

from __future__ import annotations

import reprlib
from types import FrameType
from typing import Any, Pattern

REDACTED = "[REDACTED]"
MAX_VALUE_CHARS = 120
MAX_LOCALS_PER_FRAME = 16

_SAFE_SCALARS = (str, bytes, int, float, complex, bool, type(None))


class _SafeRepr(reprlib.Repr):
    """A ``reprlib.Repr`` that never calls an object's own ``__repr__``."""

    def __init__(self, redact: Pattern[str]) -> None:
        super().__init__()
        self.redact = redact
        self.maxstring = 80
        self.maxother = 40
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 6
        self.maxlevel = 2

    def repr1(self, x: Any, level: int) -> str:
        kind = type(x)
        if kind in _SAFE_SCALARS or kind in (list, tuple, dict, set, frozenset):
            return super().repr1(x, level)
        return f"<{kind.__module__}.{kind.__qualname__}>"

    def repr_dict(self, x: dict, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        parts = []
        for key in list(x)[: self.maxdict]:
            shown = self.repr1(key, level - 1)
            if isinstance(key, str) and self.redact.search(key):
                parts.append(f"{shown}: {REDACTED}")
            else:
                parts.append(f"{shown}: {self.repr1(x[key], level - 1)}")
        if len(x) > self.maxdict:
            parts.append("...")
        return "{" + ", ".join(parts) + "}"


def local_lines(frame: FrameType, redact: Pattern[str]) -> tuple:
    """``    name = value`` lines for one frame; never raises."""
    try:
        names = dict(frame.f_locals)
    except Exception:  # a frame that is going away under us
        return ()
    render = _SafeRepr(redact)
    lines = []
    for name, value in list(names.items())[:MAX_LOCALS_PER_FRAME]:
        if redact.search(name):
            shown = REDACTED
        else:
            try:
                shown = render.repr(value)
            except Exception:
                shown = "<unrepresentable>"
        if len(shown) > MAX_VALUE_CHARS:
            shown = shown[: MAX_VALUE_CHARS - 3] + "..."
        lines.append(f"    {name} = {shown}")
    return tuple(lines)
