"""Text from spans made safe to print.

Routes, span names and file paths come from the traced requests, and an
attacker controls a request's URL path (it becomes the route when there is
no ``http.route``). Printed raw, an escape sequence in it could recolour,
retitle or rewrite the user's terminal. Every control character (C0, DEL,
C1, and the bidirectional overrides that reorder what is shown) is replaced
by its visible ``\\x..`` / ``\\u....`` form; lone surrogates (undecodable
input) likewise, so writing the text never fails.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _visible(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character shown, never obeyed."""
    value = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_visible, value)


def one_line(text: object) -> str:
    """Like ``printable``, with runs of whitespace (newlines, tabs) as one space first."""
    value = text if isinstance(text, str) else str(text)
    return printable(" ".join(value.split()))
