"""The two lists the report opens with, from a real run: gunicorn serving
the example shop under ``opentelemetry-instrument``, its spans written by the
real ``otlp_json_file`` exporter. Fast, slow, CPU-bound and database
requests, one request aborted by gunicorn's ``--timeout`` and one whose
worker was SIGKILLed after its snapshot; the report's numbers are checked
against what was sent."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from support.servers import EXAMPLES, Server, otel_env, wait_until

from otel_slowstack.report.command import build_report
from otel_slowstack.report.renderers import render
from otel_slowstack.report.sources import Query

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e

SETTINGS = dict(
    OTEL_TRACES_EXPORTER="otlp_json_file",
    OTEL_PYTHON_SLOWSTACK_THRESHOLD="500",
    OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="700",
    OTEL_BSP_SCHEDULE_DELAY="100",
)


def shop(spans_file: Path, shop_db: Path) -> Server:
    """One sync worker (a stuck request stops its heartbeat), spans to ``spans_file``."""
    command = [str(BIN / "opentelemetry-instrument"), str(BIN / "gunicorn"), "--bind", "127.0.0.1:0",
               "--workers", "1", "--timeout", "8", "--graceful-timeout", "5", "shop:app"]
    shell = f"exec {shlex.join(command)} > {shlex.quote(str(spans_file))}"
    return Server(["sh", "-c", shell], otel_env("http://127.0.0.1:9", SHOP_DB=str(shop_db), **SETTINGS), cwd=EXAMPLES)


def written(spans_file: Path, name: str) -> int:
    """How many spans named ``name`` the exporter has written so far."""
    text = spans_file.read_text()
    return text.count(f'"name":"{name}"') + text.count(f'"name": "{name}"')


def one_worker(server: Server) -> int:
    assert wait_until(lambda: len(server.worker_pids()) == 1, timeout=60), server.log()
    return server.worker_pids()[0]


def test_ranking_and_killed_pages_from_a_gunicorn_run(tmp_path: Path) -> None:
    spans_file = tmp_path / "traces.jsonl"
    with shop(spans_file, tmp_path / "shop.db") as server:
        first = one_worker(server)
        for path in ["/"] * 5 + ["/report?seconds=1.2"] * 2 + ["/prices?n=1000&seconds=1.2", "/orders"]:
            status, _ = server.get(path)
            assert status == 200, (path, server.log())
        assert wait_until(lambda: written(spans_file, "GET /orders"), timeout=60), server.log()
        # Stuck, snapshot taken and exported, then the worker is SIGKILLed: its span never ends.
        before = written(spans_file, "slowstack.snapshot")
        server.get_in_background("/stuck?seconds=120")
        assert wait_until(lambda: written(spans_file, "slowstack.snapshot") > before, timeout=60), server.log()
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: server.worker_pids() and server.worker_pids() != [first], timeout=60), server.log()
        # Stuck again: gunicorn's --timeout aborts the worker, the span ends with a final sample.
        one_worker(server)
        server.get_in_background("/stuck?seconds=120")
        assert wait_until(lambda: written(spans_file, "GET /stuck"), timeout=90), server.log()
    report = build_report(str(spans_file), Query())

    routes = {r.route: r for r in report.ranking}
    requests = {route: r.durations.count for route, r in routes.items()}
    # The request lost with its worker counts under its own route: its snapshot names it.
    assert requests == {"GET /": 5, "GET /report": 2, "GET /prices": 1, "GET /orders": 1, "GET /stuck": 2}, requests
    assert report.ranking[0].route == "GET /stuck" and routes["GET /stuck"].durations.total_ms >= 8000
    assert routes["GET /report"].requests == 2 and routes["GET /prices"].requests == 1 and routes["GET /"].requests == 0
    assert 1200 <= routes["GET /report"].durations.percentile(0.5) < 1200 * 3
    assert routes["GET /prices"].cpu_mean > routes["GET /report"].cpu_mean + 0.05
    assert routes["GET /orders"].db_ms > 0 and routes["GET /report"].db_ms == 0
    # The pages that got killed: one aborted by gunicorn, one lost with its worker.
    assert report.killed == 2
    assert dict(routes["GET /stuck"].killed) == {"signal": 1, "killed": 1}
    for killed in routes["GET /stuck"].killed_listed:
        assert killed.frames[-1].function == "wait_for_lock" and len(killed.trace_id) == 32

    text = render(report, "text")
    overview = text.split("━━")[0]
    assert overview.index("GET /stuck") < overview.index("GET /report") < overview.index("GET /   ")
    (aborted,) = [k for k in routes["GET /stuck"].killed_listed if k.outcome == "signal"]
    assert f"trace {aborted.trace_id}: aborted by a signal" in overview and "wait_for_lock" in overview
    folded = render(report, "folded").splitlines()
    assert any(line.startswith("GET /stuck;[signal];") and "wait_for_lock" in line for line in folded)
    assert any(line.startswith("GET /stuck;[killed];") for line in folded)
    names = [p["name"] for p in json.loads(render(report, "speedscope"))["profiles"]]
    assert any(n.startswith("GET /stuck (") and "1 aborted by a signal" in n for n in names)
    page = render(report, "html")
    assert "Where the worker time goes" in page and "Requests that did not finish" in page and aborted.trace_id in page
