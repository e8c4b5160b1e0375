"""``otel-slowstack demo``: the example shop under the real
``opentelemetry-instrument gunicorn`` and the real ``otlp_json_file``
exporter, then the report of the file that run wrote."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import pytest

from otel_slowstack import demo

BIN = Path(sys.executable).parent
SCHEMA = Path(__file__).parent / "report_data" / "speedscope-file-format-schema.json"

pytestmark = pytest.mark.e2e


def section(text: str, route: str) -> str:
    for part in text.split("━━ ")[1:]:
        if part.startswith(route + "\n"):
            return part
    raise AssertionError(f"no section for {route} in:\n{text}")


@pytest.fixture
def accounts_table():
    """The shop's /lock table, named for this run and dropped after it."""
    name = f"slowstack_demo_{uuid.uuid4().hex[:8]}"
    yield name
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {name}")
    except Exception:
        pass  # PostgreSQL absent: the shop never created it


def test_demo_runs_the_shop_and_reports_its_hotspots(tmp_path: Path, accounts_table: str) -> None:
    elsewhere = tmp_path / "elsewhere"  # any working directory will do
    elsewhere.mkdir()
    out = tmp_path / "demo"
    result = subprocess.run(
        [str(BIN / "otel-slowstack"), "demo", "--dir", str(out)],
        cwd=str(elsewhere), capture_output=True, text=True, timeout=120,
        env=dict(os.environ, SHOP_ACCOUNTS_TABLE=accounts_table),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spans_file = out / "traces.jsonl"
    assert f"Spans written to {spans_file}" in result.stderr
    assert "GET /report?seconds=2    200" in result.stderr
    lock = [line for line in result.stderr.splitlines() if "/lock" in line][0]
    assert " 200 in " in lock or "404: not available" in lock or "503: not available" in lock

    report = section(result.stdout, "GET /report")
    assert "verdict: waiting" in report
    assert "in fetch_exchange_rates (examples/shop.py:" in report
    assert "app   examples/shop.py:" in report and "lib   flask/app.py:" in report
    prices = section(result.stdout, "GET /prices")
    assert "verdict: computing" in prices or "verdict: partly computing" in prices
    assert "count_price_collisions (examples/shop.py:" in prices
    orders = section(result.stdout, "GET /orders")
    assert "N+1 statements:" in orders and "SELECT name FROM customers WHERE id = ?" in orders
    if " 200 in " in lock:  # PostgreSQL answered: the lock wait is a route of its own
        assert "verdict: waiting" in section(result.stdout, "GET /lock")

    # The file is what the real exporter wrote: OTLP JSON, one export batch per line.
    lines = spans_file.read_text().splitlines()
    assert lines and all("resourceSpans" in json.loads(line) for line in lines)
    speedscope = subprocess.run(
        [str(BIN / "otel-slowstack"), "report", str(spans_file), "-f", "speedscope"],
        capture_output=True, text=True, timeout=60,
    )
    assert speedscope.returncode == 0, speedscope.stderr
    document = json.loads(speedscope.stdout)
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    names = [p["name"] for p in document["profiles"]]
    assert any(n.startswith("GET /report ") for n in names) and any(n.startswith("GET /prices ") for n in names)


def test_demo_without_a_source_checkout_says_so(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "examples_dir", lambda: None)
    options = argparse.Namespace(format="text", output=None, dir=None, threshold="500ms")
    assert demo.run(options) == 1
    err = capsys.readouterr().err
    assert "the demo runs examples/shop.py from a source checkout of otel-slowstack" in err
    assert "pip install -e '.[examples]'" in err
    assert len(err.strip().splitlines()) == 1
