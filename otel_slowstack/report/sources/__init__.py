"""Where spans come from: an OTLP JSON file, Jaeger's query API, Grafana Tempo.

Every source yields ``SpanRecord`` objects one at a time, so the stages after
it never hold more than a page of a backend's answer or a line of a file.
``open_source`` picks the source from what the user typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Protocol

from ..errors import ReportError
from .record import EventRecord, SpanRecord

__all__ = ["EventRecord", "SpanRecord", "Progress", "Source", "Query", "open_source"]


class Progress:
    """Told how far a source has got; this one ignores it (tests, pipes)."""

    def start(self, description: str, total: Optional[float] = None) -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass


class Source(Protocol):
    description: str
    notes: list

    def spans(self, progress: Progress) -> Iterator[SpanRecord]: ...


@dataclass
class Query:
    """What to ask a backend for; a file ignores all of it."""

    service: Optional[str] = None
    since_s: float = 3600.0
    until_s: Optional[float] = None  # None: now
    limit: int = 1000
    page_size: int = 100
    headers: list = field(default_factory=list)
    timeout_s: float = 10.0
    backend: Optional[str] = None  # "jaeger", "tempo" or None to detect
    concurrency: int = 8


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def open_source(location: str, query: Query) -> Source:
    """A file path (or ``-``) or a backend URL -> its source."""
    if not is_url(location):
        if query.backend:
            raise ReportError(f"--backend {query.backend} needs a URL, not the file {location!r}")
        from .file import FileSource

        return FileSource(location)
    from .http import HttpClient

    client = HttpClient(location, query.headers, query.timeout_s)
    backend = query.backend or detect_backend(client)
    if backend == "jaeger":
        from .jaeger import JaegerSource

        return JaegerSource(client, query)
    if backend == "tempo":
        from .tempo import TempoSource

        return TempoSource(client, query)
    raise ReportError(f"unknown --backend {backend!r}: use jaeger or tempo")


def detect_backend(client) -> str:
    """Jaeger answers ``/api/v3/services`` with ``{"services": [...]}`` (or, before
    v3, ``/api/services`` with ``{"data": ...}``); Tempo answers ``/api/echo``."""
    from .http import HttpStatusError

    for path, key in (("/api/v3/services", "services"), ("/api/services", "data")):
        try:
            body = client.get_json(path)
            if isinstance(body, dict) and (key in body or (key == "services" and body == {})):
                return "jaeger"
        except HttpStatusError:
            pass
        except ReportError as error:
            if not getattr(error, "not_json", False):
                raise
    try:
        text = client.get_text("/api/echo")
        if text.strip() == "echo":
            return "tempo"
    except HttpStatusError:
        pass
    raise ReportError(
        f"{client.shown_url} answers neither as Jaeger's query API (/api/v3/services, /api/services) nor as Grafana Tempo (/api/echo); "
        "check the URL, or name the backend with --backend jaeger|tempo"
    )
