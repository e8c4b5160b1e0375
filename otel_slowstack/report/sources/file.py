"""An OTLP JSON lines file, read one line at a time.

The ``otlp_json_file`` exporter writes one ``{"resourceSpans": ...}`` object
per line (one export batch), so memory stays bounded by the largest batch
however big the file is. Also accepted, because users will have them: a
gzip-compressed file (recognised by its first bytes, whatever its name),
standard input (``-``), one JSON document spread over many lines (a trace
saved from Tempo or Jaeger's UI, or an answer of Jaeger's v3 API saved with
curl: ``{"result": ...}`` objects one after the other), read whole up to a
size limit.

Files come from anywhere, so everything has a limit: a line longer than
``MAX_LINE`` is skipped without being held in memory, a document nested
deeper than Python can parse is skipped, and a file that never ends in a
newline (``/dev/zero``) stops at ``MAX_SKIPPED_BYTES``. A line that cannot
be read is skipped and counted, said once at the end; a file with nothing
readable is one line and exit code 1.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import zlib
from typing import IO, Any, Iterator, Optional

from ..errors import ReportError
from . import otlp_json
from .record import Skipped, SpanRecord

MIB = 1024 * 1024
#: One line (one export batch) at most; longer lines are skipped.
MAX_LINE = 64 * MIB
#: One multi-line JSON document at most.
MAX_WHOLE_DOCUMENT = 64 * MIB
#: Bytes of over-long lines skipped before giving up on the file.
MAX_SKIPPED_BYTES = 256 * MIB
EXPECTED = "expected OTLP JSON lines, one object with resourceSpans per line, as the otlp_json_file exporter writes"
_GZIP_MAGIC = b"\x1f\x8b"
#: What a hostile or damaged JSON value can raise while being decoded.
_DECODE_ERRORS = (ValueError, UnicodeDecodeError, RecursionError, OverflowError, TypeError, AttributeError, KeyError)


class _TooLong(Exception):
    pass


def document_spans(document: Any, skipped: Optional[Skipped] = None) -> Iterator[SpanRecord]:
    """Spans of one parsed document: OTLP JSON, Jaeger's ``{"data": [trace, ...]}``,
    or Jaeger v3's ``{"result": {"resourceSpans": ...}}``."""
    if isinstance(document, dict) and "data" in document and "resourceSpans" not in document:
        data = document["data"]
        if data is None:
            raise otlp_json.NotOtlp('a Jaeger answer with "data": null')
        if isinstance(data, list):
            from .jaeger import trace_spans

            for trace in data:
                yield from trace_spans(trace, skipped)
            return
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]
    yield from otlp_json.spans(document, skipped)


def read_documents(data: bytes) -> list:
    """One JSON value, or several one after the other (Jaeger v3 streams ``{"result": ...}`` chunks)."""
    text = data.decode("utf-8")
    decoder = json.JSONDecoder()
    documents = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position >= len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


class FileSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = "standard input" if path == "-" else path
        self.notes: list = []
        self.coverage = "every SERVER and CONSUMER span in the file"
        self.skipped = Skipped()
        self._gzip = False

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            stream: IO[bytes] = sys.stdin.buffer
        else:
            try:
                if os.path.isdir(self.path):
                    raise ReportError(f"{self.path} is a directory, not an OTLP JSON file")
                stream = open(self.path, "rb")
            except FileNotFoundError:
                raise ReportError(f"{self.path}: no such file") from None
            except PermissionError:
                raise ReportError(f"{self.path}: permission denied") from None
            except OSError as error:
                raise ReportError(f"{self.path}: cannot open: {error.strerror or error}") from None
        try:  # gzip is told by its first bytes, not by the file's name
            head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""  # type: ignore[attr-defined]
        except OSError:
            head = b""
        if head == _GZIP_MAGIC:
            self._gzip = True
            return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
        return stream

    def _size(self) -> Optional[int]:
        if self.path == "-" or self._gzip:
            return None
        try:
            size = os.path.getsize(self.path)
            return size or None
        except OSError:
            return None

    def spans(self, progress) -> Iterator[SpanRecord]:
        stream = self._open()
        size = self._size()
        progress.start(f"reading {os.path.basename(self.path) or self.path}", size)
        good = 0
        skipped = self.skipped
        try:
            lines = _lines(stream)
            for lineno, raw in enumerate(lines, 1):
                if raw is None:
                    skipped.add(f"line {lineno} is longer than {MAX_LINE // MIB} MiB")
                    continue
                progress.advance(len(raw))
                if not raw.strip():
                    continue
                try:
                    document = json.loads(raw)
                    documents = [document]
                except _DECODE_ERRORS as error:
                    if lineno == 1 and isinstance(error, ValueError) and _continues(raw, error):
                        yield from self._whole_document(stream, raw, size)
                        return
                    documents = _several(raw)
                    if documents is None:
                        skipped.add(f"line {lineno} is not JSON ({_short(error)})")
                        continue
                try:
                    spans = [s for d in documents for s in document_spans(d, skipped)]  # one line: bounded
                except otlp_json.NotOtlp as error:
                    skipped.add(f"line {lineno} is JSON but not OTLP trace data ({error})")
                    continue
                except _DECODE_ERRORS as error:
                    skipped.add(f"line {lineno} could not be read ({_short(error)})")
                    continue
                good += 1
                yield from spans
        except _TooLong:
            if not good:
                raise ReportError(
                    f"{self.description}: no line ends within the first {MAX_SKIPPED_BYTES // MIB} MiB; {EXPECTED}"
                ) from None
            skipped.add(f"the rest of the file: no line ends within {MAX_SKIPPED_BYTES // MIB} MiB")
        except (OSError, EOFError, zlib.error) as error:  # a corrupt or truncated gzip stream, EIO
            reason = "it ends before the end of its gzip stream" if isinstance(error, EOFError) else f"cannot read: {_short(error)}"
            if not good:
                raise ReportError(f"{self.description}: {reason}") from None
            skipped.add(f"the rest of the file ({reason})")
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        self._finish(good)

    def _finish(self, good: int) -> None:
        skipped = self.skipped
        if not good:
            if not skipped.count:
                raise ReportError(f"{self.description} is empty: no spans were written to it yet")
            raise ReportError(f"{self.description} is not OTLP JSON: {skipped.first}; {EXPECTED}")
        if skipped.count:
            self.notes.append(skipped.note())

    def _whole_document(self, stream: IO[bytes], first: bytes, size: Optional[int]) -> Iterator[SpanRecord]:
        limit = f"{MAX_WHOLE_DOCUMENT // MIB} MiB"
        if size is not None and size > MAX_WHOLE_DOCUMENT:
            raise ReportError(f"{self.description}: line 1 is not a complete JSON object, and the file is over {limit} to read whole; {EXPECTED}")
        data = first + stream.read(MAX_WHOLE_DOCUMENT + 1 - len(first))
        if len(data) > MAX_WHOLE_DOCUMENT:
            raise ReportError(f"{self.description}: line 1 is not a complete JSON object, and the file is over {limit} to read whole; {EXPECTED}")
        try:
            documents = read_documents(data)
        except _DECODE_ERRORS as error:
            raise ReportError(f"{self.description} is not JSON ({_short(error)}); {EXPECTED}") from None
        spans: list = []
        good = 0
        for document in documents:
            try:
                spans.extend(document_spans(document, self.skipped))
                good += 1
            except otlp_json.NotOtlp as error:
                self.skipped.add(f"a document that is JSON but not trace data ({error})")
            except _DECODE_ERRORS as error:
                self.skipped.add(f"a document that could not be read ({_short(error)})")
        if not good and len(documents) == 1 and self.skipped.count == 1:
            raise ReportError(f"{self.description} is JSON but not trace data ({self.skipped.first}); {EXPECTED}")
        yield from spans
        self._finish(good)


def _several(line: bytes) -> Optional[list]:
    """JSON values one after the other on one line (Jaeger v3's streamed chunks), else None."""
    if not line.lstrip().startswith(b"{"):
        return None
    try:
        documents = read_documents(line)
    except _DECODE_ERRORS:
        return None
    return documents if len(documents) > 1 else None


def _continues(line: bytes, error: Exception) -> bool:
    """Line 1 is the start of one JSON document spread over many lines: it
    opens an object or array and the parser ran out of text, not into junk."""
    text = line.strip()
    position = getattr(error, "pos", -1)
    return text[:1] in (b"{", b"[") and position >= len(text.decode("utf-8", "replace"))


def _lines(stream: IO[bytes]) -> Iterator[Optional[bytes]]:
    """Lines of a binary stream, never holding more than ``MAX_LINE`` bytes;
    None for a line that was longer (its bytes are read and dropped)."""
    dropped = 0
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_LINE or line.endswith(b"\n"):
            yield line
            continue
        while not line.endswith(b"\n"):  # drop the rest of the over-long line
            dropped += len(line)
            if dropped > MAX_SKIPPED_BYTES:
                raise _TooLong()
            line = stream.readline(MAX_LINE)
            if not line:
                break
        yield None


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, RecursionError):
        text = "nested too deeply"
    return text if len(text) <= 80 else text[:79] + "…"
