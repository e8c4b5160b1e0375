"""Local variables for samples: off by default, bounded and redacted when on.

Rendered on the watchdog thread while the application's threads wait for
the GIL, so a value costs what its first few hundred bytes cost, whatever
its size: a string, ``bytes`` or ``bytearray`` is sliced before anything
else is done with it (a 150 MB local is never copied), a container shows
its first few items, an int of more than 256 bits only its size.

No application code runs. A ``repr`` is arbitrary code (a lazy ORM query set
runs its query when printed), and so are ``__lt__`` (sorting a set),
``__eq__``/``__hash__`` (looking a key up), ``__len__``/``__iter__`` of a
subclass of ``list``, and even ``__class__`` (``isinstance``). So only the
exact builtin types are looked into, by ``type(x) is``, iterated without
sorting or lookups; anything else, subclasses of builtins included, shows
as ``<module.Class>``.

Secrets: a local or dictionary key whose name matches the redaction
pattern shows ``[REDACTED]``, and credentials recognised in values are
replaced too (see ``redaction``).
"""

from __future__ import annotations

from itertools import islice
from types import FrameType
from typing import Any, Pattern

from otel_slowstack.capture.redaction import REDACTED, Redactor, looks_random
from otel_slowstack.seams import get_frame

#: One rendered value, at most (characters).
MAX_VALUE_CHARS = 200
MAX_LOCALS_PER_FRAME = 16
#: Characters of a string shown; of bytes, bytes shown.
_SHOWN = 80
#: How much of a string or bytes value is scanned for credentials: more than
#: is shown, so that a secret starting in the part shown is seen whole.
_SCANNED = 512
_ITEMS = 6
_DEPTH = 2
_INT_BITS = 256
#: Characters of one string's repr, at most (a sample line has room for its size after it).
_SHOWN_REPR = 160
_NAME_CHARS = 100

_TYPE_QUALNAME = type.__dict__["__qualname__"]
_TYPE_MODULE = type.__dict__["__module__"]


def _locals_type() -> type:
    return type(get_frame().f_locals)  # dict, or 3.13's FrameLocalsProxy


#: ``frame.f_locals`` of a function frame. A class body run by a metaclass
#: with ``__prepare__`` has the application's own mapping there: skipped.
#: Types are compared with ``is``: ``in`` would hash them, and a metaclass
#: can define ``__hash__``/``__eq__``.
_FRAME_LOCALS = _locals_type()


def type_name(kind: type) -> str:
    """``<module.Class>``, read without running a metaclass's properties."""
    try:
        module, qualname = _TYPE_MODULE.__get__(kind), _TYPE_QUALNAME.__get__(kind)
    except Exception:
        return "<object>"
    if type(module) is not str or type(qualname) is not str:
        return "<object>"
    return f"<{qualname}>" if module == "builtins" else f"<{module}.{qualname}>"


class _Renderer:
    """Renders one value within its budget; see the module docstring."""

    __slots__ = ("redactor",)

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def value(self, x: Any, depth: int) -> str:
        kind = type(x)
        if kind is str:
            return self.text(x)
        if kind is bytes or kind is bytearray:
            return self.binary(x)
        if kind is int:
            bits = x.bit_length()
            return repr(x) if bits <= _INT_BITS else f"<int of {bits} bits>"
        if kind is float or kind is bool or kind is complex or x is None:
            return repr(x)
        if kind is list or kind is tuple:
            return self.sequence(x, depth)
        if kind is dict:
            return self.mapping(x, depth)
        if kind is set or kind is frozenset:
            return self.collection(x, depth)
        return type_name(kind)

    def text(self, x: str) -> str:
        size = len(x)
        window = self.redactor.text(x[:_SCANNED], cut=size > _SCANNED)
        return _sized(repr(window[:_SHOWN]), size <= _SHOWN and len(window) <= _SHOWN, f"{size} chars")

    def binary(self, x: Any) -> str:
        size = len(x)
        window = bytes(x[:_SCANNED])  # the slice is the only copy
        text = window.decode("latin-1")
        redacted = self.redactor.text(text, cut=size > _SCANNED)
        if redacted != text:
            window = redacted.encode("latin-1")
        shown = repr(window[:_SHOWN])
        if type(x) is bytearray:
            shown = f"bytearray({shown})"
        return _sized(shown, size <= _SHOWN and len(window) <= _SHOWN, f"{size} bytes")

    def sequence(self, x: Any, depth: int) -> str:
        opening, closing = ("[", "]") if type(x) is list else ("(", ")")
        size = len(x)
        if size == 0:
            return opening + closing
        if depth <= 0:
            return f"{opening}...{closing}"
        items = list(islice(x, _ITEMS))
        redactor = self.redactor
        parts, hide_next, after_name = [], False, False
        for item in items:
            if hide_next or (after_name and type(item) is str and looks_random(item[:_NAME_CHARS])):
                parts.append(REDACTED)  # ['--password', 'PASS'], ['token', 'ghp_9f8e7d6c5b4a3928']
                hide_next = after_name = False
                continue
            parts.append(self.value(item, depth - 1))
            word = _word(item)
            hide_next = word is not None and redactor.is_flag(word)
            after_name = word is not None and redactor.is_pair_name(word)
        first = _word(items[0])
        if size == 2 and first is not None and redactor.is_pair_name(first):
            parts[1] = REDACTED  # ('Authorization', 'Bearer x'), ('password', 'x')
        if size > _ITEMS:
            parts.append(f"... {size} items")
        if type(x) is tuple and size == 1:
            parts[0] += ","
        return opening + ", ".join(parts) + closing

    def mapping(self, x: dict, depth: int) -> str:
        size = len(x)
        if size == 0:
            return "{}"
        if depth <= 0:
            return "{...}"
        parts = []
        # dict.items: no lookup of a key, so no __hash__/__eq__ of the application's.
        for key, item in islice(dict.items(x), _ITEMS):
            shown = self.value(key, depth - 1)
            if self._secret_key(key):
                parts.append(f"{shown}: {REDACTED}")
            else:
                parts.append(f"{shown}: {self.value(item, depth - 1)}")
        if size > _ITEMS:
            parts.append(f"... {size} items")
        return "{" + ", ".join(parts) + "}"

    def collection(self, x: Any, depth: int) -> str:
        size = len(x)
        name = "set" if type(x) is set else "frozenset"
        if size == 0:
            return f"{name}()"
        if depth <= 0:
            return "{...}"
        # Iteration order, never sorted: sorting runs the items' __lt__.
        parts = [self.value(item, depth - 1) for item in islice(x, _ITEMS)]
        if size > _ITEMS:
            parts.append(f"... {size} items")
        shown = "{" + ", ".join(parts) + "}"
        return shown if type(x) is set else f"frozenset({shown})"

    def _secret_key(self, key: Any) -> bool:
        word = _word(key)
        return word is not None and self.redactor.is_secret_name(word)


def _sized(shown: str, whole: bool, size: str) -> str:
    """A string's or bytes' repr, and its size when it is not shown whole
    (escapes make a repr up to four times longer than what it shows)."""
    if whole and len(shown) <= _SHOWN_REPR:
        return shown
    return f"{shown[:_SHOWN_REPR]}... ({size})"


def _word(x: Any) -> "str | None":
    """The start of a str (a subclass's too, read with ``str``'s own slicing,
    so no override runs) or of bytes, to match against secrets' names."""
    kind = type(x)
    if kind is str:
        return x[:_NAME_CHARS]
    if issubclass(kind, str):
        return str.__getitem__(x, slice(0, _NAME_CHARS))
    if kind is bytes:
        return x[:_NAME_CHARS].decode("latin-1")
    return None


def render(value: Any, redact: Pattern[str]) -> str:
    """One value as a sample shows it (at most ``MAX_VALUE_CHARS``); never raises."""
    try:
        shown = _Renderer(Redactor(redact)).value(value, _DEPTH)
    except Exception:  # a container changed size under us, a frame going away ...
        shown = "<unrepresentable>"
    if len(shown) > MAX_VALUE_CHARS:
        shown = shown[: MAX_VALUE_CHARS - 3] + "..."
    return shown


def local_lines(frame: FrameType, redact: Pattern[str]) -> tuple:
    """``    name = value`` lines for one frame; never raises."""
    try:
        names = frame.f_locals
        kind = type(names)
        if kind is not dict and kind is not _FRAME_LOCALS:
            return ()
        items = list(islice(names.items(), MAX_LOCALS_PER_FRAME))
    except Exception:  # a frame that is going away under us
        return ()
    redactor = Redactor(redact)
    renderer = _Renderer(redactor)
    lines = []
    for name, value in items:
        if type(name) is not str:  # a module's globals can have any key
            continue
        if redactor.is_secret_name(name):
            shown = REDACTED
        else:
            try:
                shown = renderer.value(value, _DEPTH)
            except Exception:
                shown = "<unrepresentable>"
            if len(shown) > MAX_VALUE_CHARS:
                shown = shown[: MAX_VALUE_CHARS - 3] + "..."
        lines.append(f"    {name} = {shown}")
    return tuple(lines)
