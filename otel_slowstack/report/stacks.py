"""Traceback text back into frames.

``code.stacktrace`` is Python traceback form, most recent call last. The
processor writes ``  File "PATH", line N, in NAME`` lines and
``  [... N frames elided ...]`` markers; stacks recorded by other tools, or
by other Python versions, carry a ``Traceback (most recent call last):``
header, source lines, 3.11+ caret lines (``^^^^``, ``~~~^^^``), local
variable lines, ``[Previous line repeated N more times]``, exception-group
bars (``  | ``) and the exception line itself. All of those parse to the same
frames; whatever is not a frame is skipped. For a chained exception the last
traceback is the one kept: it is where the code was when it was recorded.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

from .paths import is_app_path, short_path

_FILE = re.compile(r'\A[ \t|]*File "(?P<file>.*)", line (?P<line>-?\d+)(?:, in (?P<name>.*?))?\s*\Z')
_ELIDED = re.compile(r"\A[ \t|]*\[\.\.\. (\d+) frames? elided \.\.\.\]\s*\Z")
_REPEATED = re.compile(r"\A[ \t|]*\[Previous line repeated (\d+) more times?\]\s*\Z")
_HEADER = re.compile(r"\A[ \t|+]*Traceback \(most recent call last\):\s*\Z")

ELIDED_NAME = "[frames elided]"


class Frame:
    """One frame as plain data. ``elided`` > 0 marks a run of dropped frames;
    it does not take part in equality, so stacks differing only in how many
    frames were dropped aggregate together. Immutable, with its hash computed
    once: frames are dictionary keys millions of times in a large report."""

    __slots__ = ("file", "line", "function", "is_app", "elided", "_hash")

    def __init__(self, file: str, line: int, function: str, is_app: bool, elided: int = 0) -> None:
        set_ = object.__setattr__
        set_(self, "file", file)
        set_(self, "line", line)
        set_(self, "function", function)
        set_(self, "is_app", is_app)
        set_(self, "elided", elided)
        set_(self, "_hash", hash((file, line, function, is_app)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Frame is immutable")

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Frame):
            return NotImplemented
        return (self._hash == other._hash and self.line == other.line and self.file == other.file
                and self.function == other.function and self.is_app == other.is_app)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Frame({self.file!r}, {self.line}, {self.function!r}, is_app={self.is_app}, elided={self.elided})"

    @property
    def is_elided(self) -> bool:
        return self.function == ELIDED_NAME and not self.file

    def location(self) -> str:
        """``flask/app.py:917``; empty for an elision marker."""
        if self.is_elided:
            return ""
        return f"{short_path(self.file)}:{self.line}"

    def label(self) -> str:
        """``dispatch_request (flask/app.py:902)``: one frame on one line."""
        if self.is_elided:
            return ELIDED_NAME
        return f"{self.function} ({self.location()})"


def elided(count: int) -> Frame:
    return Frame("", 0, ELIDED_NAME, False, count)


def parse_stack(text: Optional[str]) -> tuple:
    """Traceback text -> frames, outermost first; an empty tuple for no frames.

    The same few stacks recur across thousands of samples, so answers are
    cached (bounded): equal texts give the very same tuple.
    """
    if not text:
        return ()
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple:
    frames: list = []
    for raw in text.splitlines():
        if "File" in raw:
            match = _FILE.match(raw)
            if match:
                path = match.group("file")
                name = match.group("name") or "<module>"
                frames.append(Frame(path, int(match.group("line")), name.strip(), is_app_path(path)))
                continue
        if "[" in raw:
            match = _ELIDED.match(raw) or _REPEATED.match(raw)
            if match:
                frames.append(elided(int(match.group(1))))
                continue
        if "Traceback" in raw and _HEADER.match(raw):
            frames = []
    return tuple(frames)
