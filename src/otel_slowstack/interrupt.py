"""Interrupting a request before the server kills the whole worker."""

from __future__ import annotations


class SlowRequestInterrupted(TimeoutError):
    """Raised inside a request that ran past ``OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER``."""
