"""Writing to a span that may be ending on another thread, without log noise.

A sample or a counter update can race with the span's ``end()`` on its own
thread; the SDK then drops the write (correctly) and logs a warning. Our
writes run inside ``quietly()``, and a filter on the SDK's logger drops just
those warnings, just for our writes.

A process on its way down, whose spans we ended for it, is another matter:
the request code still unwinding writes to them. After ``silence_everywhere()``
those warnings are dropped whoever writes.

The filter is a change to the process (a logger that is not ours), so it is
installed with the other process hooks (``process_hooks``), or by the way
down itself; without it our writes are the same, the rare warning is not
dropped.
"""

from __future__ import annotations

import logging
import threading

_state = threading.local()
_SDK_LOGGER = "opentelemetry.sdk.trace"
_MESSAGES = (
    "Tried calling %s on an ended span.",
    "Setting attribute on ended span.",
    "Calling end() on an ended span.",
)


class _EndedSpanFilter(logging.Filter):
    everywhere = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not ((self.everywhere or getattr(_state, "on", False)) and record.msg in _MESSAGES)


_filter = _EndedSpanFilter()
_installed = False


def install() -> None:
    """Add the filter to the SDK's logger, once (``process_hooks``, and the way down)."""
    global _installed
    if not _installed:
        _installed = True
        logging.getLogger(_SDK_LOGGER).addFilter(_filter)


def uninstall() -> None:
    """Take the filter off again (``process_hooks.uninstall``)."""
    global _installed
    _installed = False
    _EndedSpanFilter.everywhere = False
    logging.getLogger(_SDK_LOGGER).removeFilter(_filter)


def silence_everywhere() -> None:
    """From now on, drop the ended-span warnings of every thread."""
    install()
    _EndedSpanFilter.everywhere = True


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
