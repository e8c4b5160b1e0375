"""An OTLP JSON lines file, read one line at a time.

The ``otlp_json_file`` exporter writes one ``{"resourceSpans": ...}`` object
per line (one export batch), so memory stays bounded by the largest batch
however big the file is. Also accepted, because users will have them: a
gzip-compressed file (``.gz``), standard input (``-``), and one JSON
document spread over many lines (a trace saved from Tempo or Jaeger's UI),
which is read whole up to a size limit.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from typing import IO, Any, Iterator, Optional

from ..errors import ReportError
from . import otlp_json
from .record import SpanRecord

#: A single multi-line JSON document is parsed whole only below this size.
MAX_WHOLE_DOCUMENT = 256 * 1024 * 1024
EXPECTED = "expected OTLP JSON lines, one object with resourceSpans per line, as the otlp_json_file exporter writes"


def document_spans(document: Any) -> Iterator[SpanRecord]:
    """Spans of one parsed document: OTLP JSON, or Jaeger's ``{"data": [trace, ...]}``."""
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        from .jaeger import trace_spans

        for trace in document["data"]:
            yield from trace_spans(trace)
        return
    yield from otlp_json.spans(document)


class FileSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = "standard input" if path == "-" else path
        self.notes: list = []

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            return sys.stdin.buffer
        try:
            if os.path.isdir(self.path):
                raise ReportError(f"{self.path} is a directory, not an OTLP JSON file")
            stream: IO[bytes] = open(self.path, "rb")
            if self.path.endswith(".gz"):
                return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
            return stream
        except FileNotFoundError:
            raise ReportError(f"{self.path}: no such file") from None
        except PermissionError:
            raise ReportError(f"{self.path}: permission denied") from None

    def _size(self) -> Optional[int]:
        if self.path == "-" or self.path.endswith(".gz"):
            return None
        try:
            return os.path.getsize(self.path)
        except OSError:
            return None

    def spans(self, progress) -> Iterator[SpanRecord]:
        stream = self._open()
        size = self._size()
        progress.start(f"reading {os.path.basename(self.path) or self.path}", size)
        good = bad = 0
        first_bad: Optional[str] = None
        try:
            for lineno, raw in enumerate(_lines(stream), 1):
                progress.advance(len(raw))
                if not raw.strip():
                    continue
                try:
                    document = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as error:
                    if lineno == 1 and _continues(raw, error):
                        yield from self._whole_document(stream, raw, size)
                        return
                    bad += 1
                    first_bad = first_bad or f"line {lineno} is not JSON ({_short(error)})"
                    continue
                try:
                    for span in document_spans(document):
                        yield span
                    good += 1
                except otlp_json.NotOtlp as error:
                    bad += 1
                    first_bad = first_bad or f"line {lineno} is JSON but not OTLP trace data ({error})"
        except OSError as error:  # gzip.BadGzipFile, EIO
            raise ReportError(f"{self.path}: cannot read: {error}") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        if not good:
            if not bad:
                raise ReportError(f"{self.description} is empty: no spans were written to it yet")
            raise ReportError(f"{self.description} is not OTLP JSON: {first_bad}; {EXPECTED}")
        if bad:
            self.notes.append(f"skipped {bad} line{'s' if bad != 1 else ''} that are not OTLP JSON ({first_bad})")

    def _whole_document(self, stream: IO[bytes], first: bytes, size: Optional[int]) -> Iterator[SpanRecord]:
        if size is not None and size > MAX_WHOLE_DOCUMENT:
            raise ReportError(f"{self.description}: line 1 is not a complete JSON object; {EXPECTED}")
        data = first + stream.read(MAX_WHOLE_DOCUMENT + 1)
        if len(data) > MAX_WHOLE_DOCUMENT:
            raise ReportError(f"{self.description}: line 1 is not a complete JSON object; {EXPECTED}")
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise ReportError(f"{self.description} is not JSON ({_short(error)}); {EXPECTED}") from None
        try:
            yield from document_spans(document)
        except otlp_json.NotOtlp as error:
            raise ReportError(f"{self.description} is JSON but not trace data ({error}); {EXPECTED}") from None


def _continues(line: bytes, error: Exception) -> bool:
    """Line 1 is the start of one JSON document spread over many lines: it
    opens an object or array and the parser ran out of text, not into junk."""
    text = line.strip()
    position = getattr(error, "pos", -1)
    return text[:1] in (b"{", b"[") and position >= len(text.decode("utf-8", "replace"))


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines of a binary stream, never reading more than one line ahead."""
    while True:
        line = stream.readline()
        if not line:
            return
        yield line


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 80 else text[:79] + "…"
