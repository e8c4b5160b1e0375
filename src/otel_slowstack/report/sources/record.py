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
