"""The one span shape every source produces; samples are read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class EventRecord(NamedTuple):
    name: str
    time_ns: int
    attributes: dict


@dataclass
class SpanRecord:
    """A finished span as a backend stored it, whatever its wire format."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str  # "server", "client", "internal", "producer", "consumer" or "unspecified"
    start_ns: int
    end_ns: int
    attributes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    service: str = ""

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6

    def attribute(self, *keys: str) -> Any:
        """The first of ``keys`` present (for old and new semantic convention names)."""
        for key in keys:
            value = self.attributes.get(key)
            if value is not None and value != "":
                return value
        return None


class Skipped:
    """Records that could not be read: how many, and the first reason, said once at the end."""

    def __init__(self) -> None:
        self.count = 0
        self.first = ""

    def add(self, reason: str) -> None:
        self.count += 1
        if not self.first:
            self.first = reason

    def note(self) -> str:
        if not self.count:
            return ""
        more = self.count - 1
        return (f"{self.count} record{'s' if self.count != 1 else ''} skipped: {self.first}"
                + (f" and {more} more" if more else ""))
