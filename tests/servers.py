"""Real servers under ``opentelemetry-instrument``, exporting to a test receiver."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Optional

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def otel_env(endpoint: str, **extra: str) -> dict:
    """Environment for an instrumented process exporting OTLP/HTTP to ``endpoint``."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("OTEL_", "GUNICORN_")):
            del env[key]
    env.update(
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="100",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Server:
    """A subprocess that serves HTTP; its output is kept for failure reports."""

    def __init__(self, argv: list, env: dict, cwd: Path = EXAMPLES, ready: str = r"Listening at: http://[\d.]+:(\d+)") -> None:
        self.argv = argv
        self.output: list = []
        self._ready = re.compile(ready)
        self._port_found = threading.Event()
        self.port: Optional[int] = None
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=str(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._port_found.wait(60):
            self.stop()
            raise AssertionError("server did not start:\n" + self.log())
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            match = self._ready.search(line)
            if match and self.port is None:
                self.port = int(match.group(1))
                self._port_found.set()

    def log(self) -> str:
        return "".join(self.output)

    def get(self, path: str, timeout: float = 60.0) -> tuple:
        """``(status, body)``; a 5xx is an answer, not an exception."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def get_in_background(self, path: str, timeout: float = 120.0) -> threading.Thread:
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
        """Child processes of the server (gunicorn's workers)."""
        try:
            out = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
            ).stdout
        except FileNotFoundError:
            return []
        return [int(p) for p in out.split()]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._reader.join(5)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    argv = [
        str(BIN / "opentelemetry-instrument"),
        str(BIN / "gunicorn"),
        "--bind",
        "127.0.0.1:0",
        "--worker-class",
        worker_class,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--graceful-timeout",
        "5",
        *(["--preload"] if preload else []),
        *extra_args,
        app,
    ]
    return Server(argv, otel_env(endpoint, **env))


#: Settings for tests whose requests last a second or two.
FAST = {"OTEL_PYTHON_SLOWSTACK_THRESHOLD": "300", "OTEL_PYTHON_SLOWSTACK_INTERVAL": "300"}


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
