"""A server in a child process: started, watched until it is ready, asked for
pages, and stopped together with every process it forked.

``otel-slowstack demo`` runs the example shop under ``opentelemetry-instrument
gunicorn`` with it; the test suite runs its real gunicorn, uvicorn, uWSGI and
Celery processes with the same class (``tests/support/servers.py``), so the
harness the demo ships is the one the tests exercise.

Threads: the caller's thread starts, queries and stops the server; one reader
thread per server appends the server's log lines to ``output`` and wakes the
callers waiting for a line. Nothing else touches it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Optional, Sequence, Union

#: gunicorn's arbiter prints this once its socket is bound; group 1 is the port.
GUNICORN_LISTENING = r"Listening at: http://[\d.]+:(\d+)"


def tool(name: str) -> Optional[str]:
    """An executable of this interpreter's environment (beside ``python``), else from ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def instrumented_environment(service: str, **settings: str) -> dict:
    """The environment of a child run under ``opentelemetry-instrument``.

    Our own ``OTEL_*`` and ``GUNICORN_*`` variables are left out, so the child
    is configured by ``settings`` alone; it exports traces only, and writes
    its output unbuffered so the reader sees each line as it is printed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GUNICORN_"))}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def gunicorn_command(instrument: str, gunicorn: str, app: str, options: Sequence[str] = ()) -> list:
    """``opentelemetry-instrument gunicorn [options] APP`` bound to a free port of 127.0.0.1."""
    return [instrument, gunicorn, "--bind", "127.0.0.1:0", *options, app]


class ServerProcess:
    """A child process in a session of its own, its log kept line by line.

    The log is the child's standard error when ``stdout`` is given (the demo
    sends its spans there), else both streams merged.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: dict,
        cwd: Union[str, Path],
        ready: str = GUNICORN_LISTENING,
        stdout: Optional[IO] = None,
    ) -> None:
        self.argv = list(argv)
        self.output: list = []
        self.port: Optional[int] = None
        self.url = ""
        self._ready = ready
        self._changed = threading.Condition()
        self._log_ended = False
        self.process = subprocess.Popen(
            self.argv,
            env=env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT,
            text=True,
            start_new_session=True,  # stop() signals the whole group: workers included
        )
        log = self.process.stderr if stdout is not None else self.process.stdout
        self._reader = threading.Thread(target=self._read, args=(log,), daemon=True)
        self._reader.start()

    def _read(self, log: IO) -> None:
        for line in log:
            with self._changed:
                self.output.append(line)
                self._changed.notify_all()
        with self._changed:
            self._log_ended = True
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float) -> Optional["re.Match"]:
        """The first log line matching ``pattern``; None when the log ends
        (the process exited) or ``timeout`` runs out before one shows."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.output[seen:]:
                    match = compiled.search(line)
                    if match:
                        return match
                seen = len(self.output)
                left = deadline - time.monotonic()
                if self._log_ended or left <= 0:
                    return None
                self._changed.wait(left)

    def wait_listening(self, timeout: float) -> bool:
        """Whether the ready line showed in time; it sets ``port`` and ``url``."""
        match = self.wait_for_line(self._ready, timeout)
        if match is None:
            return False
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        return True

    def log(self) -> str:
        return "".join(self.output)

    def tail(self, lines: int = 15) -> str:
        return "".join(self.output[-lines:]).rstrip()

    def get(self, path: str, timeout: float = 60.0) -> tuple:
        """``(status, body)``; a 4xx or 5xx is an answer, not an exception."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def stop(self, timeout: float = 20.0, signum: int = signal.SIGTERM) -> None:
        """``signum`` to the whole session (gunicorn stops gracefully on
        SIGTERM), SIGKILL if it is still there after ``timeout``."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._reader.join(5)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
