"""Writing to a span that may be ending on another thread, without log noise.

A sample or a counter update can race with the span's ``end()`` on its own
thread; the SDK then drops the write (correctly) and logs a warning. Our
writes run inside ``quietly()``, and a filter on the SDK's logger drops just
those warnings, just for our writes.
"""

from __future__ import annotations

import logging
import threading

_state = threading.local()
_MESSAGES = ("Tried calling %s on an ended span.", "Setting attribute on ended span.")


class _EndedSpanFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_state, "on", False) and record.msg in _MESSAGES)


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        _installed = True
        logging.getLogger("opentelemetry.sdk.trace").addFilter(_EndedSpanFilter())


class _Quietly:
    """``with quietly():`` — a plain class, ten times cheaper than a generator."""

    __slots__ = ()

    def __enter__(self) -> None:
        _state.on = True

    def __exit__(self, *exc: object) -> None:
        _state.on = False


_QUIETLY = _Quietly()


def quietly() -> _Quietly:
    return _QUIETLY
