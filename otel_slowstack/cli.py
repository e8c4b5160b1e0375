"""The ``otel-slowstack`` command.

``otel-slowstack report SOURCE`` reads slow spans (an OTLP JSON file, a
Jaeger query URL or a Grafana Tempo URL) and prints where the time went, per
route. ``otel-slowstack demo`` runs the bundled example shop under
OpenTelemetry, sends it a few slow requests and prints their report.

Only the standard library is imported here, and the list of output
formats, which ``report/renderers`` owns (its package imports no renderer
until one is asked for): the report's own dependencies (the ``report``
extra) are imported when a subcommand runs, and their absence is one line
telling which ``pip install`` to run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from otel_slowstack.report.renderers import FORMATS

INSTALL_HINT = "pip install 'otel-slowstack[report]'"


def _report_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="where the time of slow requests went, per route",
        description="Read otel-slowstack samples from an OTLP JSON file, Jaeger or Grafana Tempo and "
        "print the hottest frames and stacks per route.",
        epilog="examples:\n"
        "  otel-slowstack report traces.jsonl\n"
        "  otel-slowstack report http://localhost:16686 --service shop --since 1h\n"
        "  otel-slowstack report http://localhost:3200 --since 1h --format html -o slow.html\n"
        "\n"
        "limits: a line of a file is at most 64 MiB (longer lines are skipped and counted, up to 256 MiB\n"
        "of them), a multi-line document 64 MiB, an answer from a backend 64 MiB after decompression;\n"
        "--timeout bounds each request as a whole. Records that cannot be read are skipped and counted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="OTLP JSON lines file ('-' for standard input), Jaeger query URL or Tempo URL")
    parser.add_argument("--format", "-f", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--service", help="service name (required for Jaeger, optional for Tempo)")
    parser.add_argument("--since", default="1h", help="how far back to look in a backend, e.g. 30m, 1h, 2d (default: 1h)")
    parser.add_argument("--route", metavar="PATTERN", help="only routes matching PATTERN ('*' wildcard), e.g. '/orders*'")
    parser.add_argument("--limit", type=int, default=1000, help="traces to read from a backend at most (default: 1000)")
    parser.add_argument("--page-size", type=int, default=100, help="traces per backend search request (default: 100)")
    parser.add_argument(
        "--header", "-H", action="append", metavar="'NAME: VALUE'",
        help="HTTP header for every backend request, e.g. 'Authorization: Bearer TOKEN' (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds each backend request may take as a whole, however slowly it answers (default: 10)")
    parser.add_argument("--backend", choices=("jaeger", "tempo"), help="skip detecting which backend the URL is")
    parser.add_argument("--top", type=int, default=10, help="frames listed per route (default: 10)")


def _demo_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the example shop with otel-slowstack, hit its hotspots, print the report",
        description="Write the example shop that ships with otel-slowstack to DIR/examples/shop.py, start it under "
        "opentelemetry-instrument gunicorn exporting to DIR/traces.jsonl, send requests that hit each kind of "
        "hotspot, stop it and print the report. Needs: pip install 'otel-slowstack[examples]'.",
    )
    parser.add_argument("--format", "-f", choices=FORMATS, default="text", help="report format (default: text)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE")
    parser.add_argument("--dir", metavar="DIR", help="where to write the shop and its spans (default: a new temporary directory)")
    parser.add_argument("--threshold", default="500ms", help="OTEL_PYTHON_SLOWSTACK_THRESHOLD for the shop (default: 500ms)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-slowstack", description="Stacks of slow requests, from OpenTelemetry spans.")
    from otel_slowstack.version import __version__

    parser.add_argument("--version", action="version", version=f"otel-slowstack {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _report_parser(subparsers)
    _demo_parser(subparsers)
    return parser


def missing_extra() -> Optional[str]:
    """The first report dependency that cannot be imported, or None."""
    for module in ("httpx", "rich"):
        try:
            __import__(module)
        except ImportError:
            return module
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_help(sys.stderr)
        return 2
    missing = missing_extra()
    if missing is not None:
        extra, hint = ("examples", "pip install 'otel-slowstack[examples]'") if options.command == "demo" else ("report", INSTALL_HINT)
        print(f"otel-slowstack {options.command}: needs the '{extra}' extra ({missing} is not installed): {hint}", file=sys.stderr)
        return 1
    if options.command == "report":
        from otel_slowstack.report.command import run

        return run(options)
    from otel_slowstack.demo import run as run_demo

    return run_demo(options)


if __name__ == "__main__":
    sys.exit(main())
