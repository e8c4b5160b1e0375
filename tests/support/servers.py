"""Real servers under ``opentelemetry-instrument``, exporting to a test receiver.

The process harness is the package's own (``otel_slowstack.server_process``,
which ``otel-slowstack demo`` runs the shop with); this module adds what only
tests need: OTLP/HTTP settings, gunicorn and uvicorn on a free port, and the
apps in ``support/apps/`` that tests load by path.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

from otel_slowstack.server_process import GUNICORN_LISTENING, ServerProcess, gunicorn_command, instrumented_environment

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: Apps the tests serve, loaded by path (``--pythonpath APPS``, uWSGI's ``cwd``).
APPS = Path(__file__).resolve().parent / "apps"
UWSGI_APPS = APPS / "uwsgi"
BIN = Path(sys.executable).parent

#: Settings for tests whose requests last a second or two.
FAST = {"OTEL_PYTHON_SLOWSTACK_THRESHOLD": "300", "OTEL_PYTHON_SLOWSTACK_INTERVAL": "300"}


def otel_env(endpoint: str, **extra: str) -> dict:
    """Environment for an instrumented process exporting OTLP/HTTP to ``endpoint``."""
    settings = dict(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    settings.update(extra)  # a test's own settings win
    return instrumented_environment("shop", **settings)


class Process(ServerProcess):
    """The package's harness, plus what tests do to a server: requests in the
    background, a look at its children, signals to its main process."""

    def get_in_background(self, path: str, timeout: float = 120.0) -> threading.Thread:
        """A thread GETting ``path``; its ``result`` holds ``answer`` or ``error``."""
        result: dict = {}

        def run() -> None:
            try:
                result["answer"] = self.get(path, timeout)
            except Exception as exc:  # the worker may be killed: that is the point
                result["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.result = result  # type: ignore[attr-defined]
        thread.start()
        return thread

    def worker_pids(self) -> list:
        """Child processes of the server (gunicorn's workers, Celery's pool)."""
        try:
            out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        except FileNotFoundError:
            return []
        return [int(p) for p in out.split()]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)


class Server(Process):
    """A server subprocess, listening once built; its output is kept for failure reports."""

    def __init__(self, argv: list, env: dict, cwd: Path = EXAMPLES, ready: str = GUNICORN_LISTENING) -> None:
        super().__init__(argv, env, cwd, ready)
        if not self.wait_listening(60):
            self.stop()
            raise AssertionError("server did not start:\n" + self.log())


def gunicorn(
    endpoint: str,
    app: str = "shop:app",
    worker_class: str = "sync",
    workers: int = 1,
    threads: int = 1,
    preload: bool = False,
    extra_args: Iterable[str] = (),
    **env: str,
) -> Server:
    """``opentelemetry-instrument gunicorn APP`` on a free port."""
    options = [
        "--worker-class", worker_class, "--workers", str(workers), "--threads", str(threads),
        "--graceful-timeout", "5", *(["--preload"] if preload else []), *extra_args,
    ]  # fmt: skip
    argv = gunicorn_command(str(BIN / "opentelemetry-instrument"), str(BIN / "gunicorn"), app, options)
    return Server(argv, otel_env(endpoint, **env))


def uvicorn(endpoint: str, app: str = "async_shop:app", **env: str) -> Server:
    """``opentelemetry-instrument uvicorn APP`` on a free port."""
    argv = [str(BIN / "opentelemetry-instrument"), str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "0", app]
    return Server(argv, otel_env(endpoint, **env), ready=r"Uvicorn running on http://[\d.]+:(\d+)")


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
