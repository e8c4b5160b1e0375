"""``otel-slowstack report SOURCE``: source -> aggregation -> renderer -> output.

The command-line parsing lives in ``otel_slowstack.cli``; this module runs
the pipeline and turns every ``ReportError`` into one line and exit code 1.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from typing import IO, Optional

from .aggregate import Aggregator, Report
from .errors import ReportError
from .renderers import render
from .sources import Progress, Query, open_source

_SINCE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*\Z", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w`` -> seconds."""
    match = _SINCE.match(text)
    if not match:
        raise ReportError(f"--since {text!r} is not a duration like 30m, 1h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


class TerminalProgress(Progress):
    """A ``rich`` progress bar on standard error, only when it is a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn
        from rich.progress import Progress as Bar
        from rich.progress import TextColumn, TimeElapsedColumn

        self._console = Console(stderr=True)
        self._bar = Bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self._console, transient=True, disable=not self._console.is_terminal,
        )
        self._task = None
        self._bar.start()

    def start(self, description: str, total: Optional[float] = None) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(description, total=total)

    def advance(self, amount: float = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, amount)

    def stop(self) -> None:
        self._bar.stop()


def build_report(location: str, query: Query, route: Optional[str] = None, progress: Optional[Progress] = None) -> Report:
    """Read every span of the source into one ``Report``; errors are ``ReportError``."""
    source = open_source(location, query)
    aggregator = Aggregator(source.description if hasattr(source, "description") else location, route)
    try:
        for span in source.spans(progress or Progress()):
            aggregator.add_span(span)
    finally:
        client = getattr(source, "client", None)
        if client is not None:
            client.close()
    aggregator.source = source.description
    aggregator.coverage = getattr(source, "coverage", "")
    aggregator.window = getattr(source, "window", None)
    aggregator.notes.extend(source.notes)
    report = aggregator.finish()
    if report.empty:
        where = f" for routes matching {route!r}" if route else ""
        raise ReportError(
            f"no otel-slowstack samples in {report.source}{where} ({report.spans_read} spans read): "
            "is the slowstack instrumentation enabled, and is OTEL_PYTHON_SLOWSTACK_THRESHOLD below your slow requests' durations?"
        )
    return report


def check_options(options) -> None:
    """Numbers the user typed, checked before anything is read."""
    timeout = options.timeout
    if not (isinstance(timeout, float) and math.isfinite(timeout) and 0 < timeout <= 86400):
        raise ReportError(f"--timeout {timeout!r} is not a number of seconds between 0 and 86400")
    for name, value in (("--limit", options.limit), ("--page-size", options.page_size)):
        if value < 1:
            raise ReportError(f"{name} {value} must be at least 1")
    if options.top < 1:
        raise ReportError(f"--top {options.top} must be at least 1")


def run(options) -> int:
    """Run ``report`` with parsed options; 0 on success, 1 on a ``ReportError``."""
    progress: Optional[TerminalProgress] = None
    try:
        check_options(options)
        query = Query(
            service=options.service,
            since_s=parse_since(options.since),
            limit=options.limit,
            page_size=options.page_size,
            headers=options.header or [],
            timeout_s=options.timeout,
            backend=options.backend,
        )
        progress = TerminalProgress()
        try:
            report = build_report(options.source, query, options.route, progress)
        finally:
            progress.stop()
        write(report, options.format, options.output, options.top)
    except ReportError as error:
        say_error(f"otel-slowstack report: error: {error}")
        return 1
    except KeyboardInterrupt:
        say_error("otel-slowstack report: interrupted")
        return 130
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        _quiet_stdout()
        return 0
    except (RecursionError, MemoryError) as error:
        say_error(f"otel-slowstack report: error: the input is too large or too deeply nested to read ({type(error).__name__})")
        return 1
    except Exception as error:  # a bug of ours: still one line, never a traceback in the user's terminal
        say_error(f"otel-slowstack report: error: unexpected {type(error).__name__}: {error} "
                  "(a bug in otel-slowstack: please report it with the input that caused it)")
        return 1
    return 0


def say_error(text: str) -> None:
    """One line on standard error, whatever the text holds (escapes, lone surrogates, newlines)."""
    from .printable import one_line

    sys.stderr.write(one_line(text) + "\n")
    sys.stderr.flush()


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def write(report: Report, fmt: str, output: Optional[str], top: int = 10, stream: Optional[IO[str]] = None) -> None:
    stream = stream or sys.stdout
    if output and output != "-":
        text = render(report, fmt, color=False, width=120, top=top)
        try:
            with open(output, "w", encoding="utf-8", errors="backslashreplace") as handle:
                handle.write(text)
        except OSError as error:
            raise ReportError(f"cannot write {output}: {error.strerror or error}") from None
        print(f"wrote {fmt} report to {os.path.abspath(output)}", file=sys.stderr)
        return
    color = fmt == "text" and stream.isatty() and "NO_COLOR" not in os.environ
    width = shutil.get_terminal_size((120, 24)).columns if stream.isatty() else 120
    text = render(report, fmt, color=color, width=max(width, 80), top=top)
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:  # bytes never fail to encode, whatever a span's text held
        stream.flush()
        buffer.write(text.encode("utf-8", "backslashreplace"))
        buffer.flush()
    else:
        stream.write(text)
        stream.flush()
