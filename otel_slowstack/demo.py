"""``otel-slowstack demo``: see the whole loop on your own machine in a minute.

Writes the example shop that ships with the package
(``otel_slowstack/examples/shop.py``, ``examples/shop.py`` in the repository)
to ``DIR/examples/shop.py``, starts it under ``opentelemetry-instrument
gunicorn`` with otel-slowstack enabled and the ``otlp_json_file`` exporter
writing spans to ``DIR/traces.jsonl``, sends requests that hit each kind of
hotspot (a slow upstream call, a CPU-bound loop, an N+1, and a lock wait
where PostgreSQL is there), stops the server so every span is flushed, and
prints the report of that file. It needs ``pip install
'otel-slowstack[examples]'`` and works from any working directory. The
server is run by ``server_process.ServerProcess``, the harness the test suite
runs its own servers with.

Every hotspot lasts a wall-clock time well past the threshold (the CPU loop
included: it repeats its work until its time is up), so what the report
shows does not depend on how fast or how busy the machine is.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path
from typing import Optional

from otel_slowstack.report.errors import ReportError
from otel_slowstack.server_process import ServerProcess, gunicorn_command, instrumented_environment, tool

#: (path, what it shows); a 404 or 503 means the shop cannot serve it here.
HOTSPOTS = (
    ("/report?seconds=2", "a slow upstream call: the request waits"),
    ("/prices?n=2000&seconds=2", "a CPU-bound loop: the request computes"),
    ("/orders", "an N+1: one query per order"),
    ("/lock?seconds=2", "a lock wait in PostgreSQL"),
)
NOT_AVAILABLE = {404: "the shop has no such page", 503: "its backing service is not available here"}
INSTALL = "pip install 'otel-slowstack[examples]'"
START_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 20.0


def shop_source() -> Optional[Path]:
    """The shop shipped inside the package."""
    path = Path(__file__).resolve().parent / "examples" / "shop.py"
    return path if path.is_file() else None


def write_shop(workdir: Path) -> Path:
    """``DIR/examples/shop.py``: served from there, its frames are application code in the report."""
    source = shop_source()
    if source is None:
        raise ReportError(f"this installation of otel-slowstack has no example shop ({Path(__file__).resolve().parent}/examples/shop.py); reinstall it: {INSTALL}")
    examples = workdir / "examples"
    examples.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, examples / "shop.py")
    return examples


def _check_requirements() -> tuple:
    for module in ("flask", "gunicorn", "opentelemetry.distro", "opentelemetry.exporter.otlp.json.file",
                   "opentelemetry.instrumentation.flask"):
        try:
            __import__(module)
        except ImportError:
            raise ReportError(f"the demo needs the 'examples' extra ({module} is missing): {INSTALL}") from None
    instrument, gunicorn = tool("opentelemetry-instrument"), tool("gunicorn")
    if not instrument or not gunicorn:
        raise ReportError(f"the demo needs opentelemetry-instrument and gunicorn on PATH: {INSTALL}")
    return instrument, gunicorn


def shop_environment(threshold: str, db_path: Path) -> dict:
    return instrumented_environment(
        "shop",
        OTEL_TRACES_EXPORTER="otlp_json_file",  # JSON lines on the server's standard output
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_PYTHON_SLOWSTACK_THRESHOLD=threshold,
        SHOP_DB=str(db_path),
    )


class Shop(ServerProcess):
    """The example shop under ``opentelemetry-instrument gunicorn``, its spans going to ``spans_file``."""

    def __init__(self, examples: Path, instrument: str, gunicorn: str, spans_file: Path, env: dict) -> None:
        self._spans = open(spans_file, "wb")
        options = ["--workers", "1", "--threads", "4", "--timeout", "60", "--graceful-timeout", "15"]
        super().__init__(gunicorn_command(instrument, gunicorn, "shop:app", options), env, examples, stdout=self._spans)

    def wait_ready(self) -> None:
        """Listening, a worker booted, and ``/`` served."""
        deadline = time.monotonic() + START_TIMEOUT_S
        if not (self.wait_listening(START_TIMEOUT_S)
                and self.wait_for_line("Booting worker", deadline - time.monotonic())):
            if self.process.poll() is not None:
                raise ReportError("the shop exited while starting:\n" + self.tail())
            raise ReportError(f"the shop did not start within {START_TIMEOUT_S:.0f} s:\n" + self.tail())
        status, _ = self.get("/", timeout=START_TIMEOUT_S)
        if status != 200:
            raise ReportError(f"the shop answered {status} on /:\n" + self.tail())

    def get(self, path: str, timeout: float = 60.0) -> tuple:
        """``(0, reason)`` when the shop does not answer at all: the demo reports it and goes on."""
        try:
            return super().get(path, timeout)
        except (urllib.error.URLError, OSError) as error:
            return 0, str(getattr(error, "reason", error))

    def stop(self, timeout: float = STOP_TIMEOUT_S, signum: int = signal.SIGTERM) -> None:
        """SIGTERM: gunicorn stops gracefully and each process flushes its spans on exit."""
        super().stop(timeout, signum)
        self._spans.close()


def send_hotspots(shop: Shop, say) -> list:
    """All hotspot requests at once (the shop has four threads); their outcomes in order."""
    results: list = [None] * len(HOTSPOTS)

    def call(i: int, path: str) -> None:
        started = time.monotonic()
        status, body = shop.get(path)
        results[i] = (path, status, time.monotonic() - started, body)

    threads = [threading.Thread(target=call, args=(i, path), daemon=True) for i, (path, _) in enumerate(HOTSPOTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    for (path, what), result in zip(HOTSPOTS, results):
        if result is None:
            say(f"  GET {path:<26} no answer  ({what})")
            continue
        _, status, seconds, _ = result
        if status in NOT_AVAILABLE:
            say(f"  GET {path:<26} {status}: not available, {NOT_AVAILABLE[status]}  ({what})")
        else:
            say(f"  GET {path:<26} {status} in {seconds:.1f} s  ({what})")
    return results


def run(options) -> int:
    try:
        return _run(options)
    except ReportError as error:
        print(f"otel-slowstack demo: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("otel-slowstack demo: interrupted", file=sys.stderr)
        return 130


def _run(options) -> int:
    from otel_slowstack.report.command import build_report, write
    from otel_slowstack.report.sources import Query

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    instrument, gunicorn = _check_requirements()
    workdir = Path(options.dir) if options.dir else Path(tempfile.mkdtemp(prefix="otel-slowstack-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    examples = write_shop(workdir.resolve())
    spans_file = (workdir / "traces.jsonl").resolve()
    if spans_file.exists():
        spans_file.unlink()
    say(f"Starting {examples / 'shop.py'} under opentelemetry-instrument gunicorn "
        f"(OTEL_PYTHON_SLOWSTACK_THRESHOLD={options.threshold}, spans to {spans_file}) …")
    shop = Shop(examples, instrument, gunicorn, spans_file, shop_environment(options.threshold, workdir / "shop.db"))
    try:
        shop.wait_ready()
        say(f"Shop listening at {shop.url}; sending requests that hit each kind of hotspot:")
        send_hotspots(shop, say)
    finally:
        say("Stopping the shop (its spans are flushed on exit) …")
        shop.stop()
    say(f"Spans written to {spans_file}")
    say(f"(report it again with: otel-slowstack report {spans_file} --format html -o slow.html)")
    say("")
    try:
        report = build_report(str(spans_file), Query())
    except ReportError as error:
        raise ReportError(f"{error}\nshop log:\n{shop.tail()}") from None
    write(report, options.format, options.output)
    return 0
