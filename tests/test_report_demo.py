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


def cpu_percent(section_text: str) -> int:
    """The ``CPU N% of wall time`` of a route's verdict."""
    import re

    return int(re.search(r"CPU (\d+)% of wall time", section_text).group(1))


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
    assert (out / "examples" / "shop.py").read_text() == Path(demo.__file__).with_name("examples").joinpath("shop.py").read_text()
    spans_file = out / "traces.jsonl"
    assert f"Spans written to {spans_file}" in result.stderr
    sent = {line.split()[1]: line for line in result.stderr.splitlines() if line.startswith("  GET ")}
    assert " 200 in " in sent["/report?seconds=2"] and " 200 in " in sent["/prices?n=2000&seconds=2"]
    lock = [line for line in result.stderr.splitlines() if "/lock" in line][0]
    assert " 200 in " in lock or "404: not available" in lock or "503: not available" in lock

    report = section(result.stdout, "GET /report")
    assert "verdict: waiting" in report
    assert "in fetch_exchange_rates (examples/shop.py:" in report
    assert "app   examples/shop.py:" in report and "lib   flask/app.py:" in report
    prices = section(result.stdout, "GET /prices")
    # How much of its wall time the loop got on a CPU depends on the machine's
    # load; that it computed while /report waited does not.
    assert cpu_percent(prices) > cpu_percent(report), (prices, report)
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


def test_demo_without_its_shop_says_how_to_reinstall(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "shop_source", lambda: None)
    options = argparse.Namespace(format="text", output=None, dir=str(tmp_path), threshold="500ms")
    assert demo.run(options) == 1
    err = capsys.readouterr().err
    assert "has no example shop" in err and "pip install 'otel-slowstack[examples]'" in err
    assert len(err.strip().splitlines()) == 1


def test_the_repositorys_example_is_the_shipped_shop() -> None:
    """``examples/shop.py`` is the readable copy: the very file the package ships, not a second one."""
    example = Path(__file__).parent.parent / "examples" / "shop.py"
    assert example.resolve() == (Path(demo.__file__).parent / "examples" / "shop.py").resolve()


@pytest.mark.timeout(600)
def test_demo_from_a_built_wheel_installed_in_a_fresh_venv(tmp_path: Path, accounts_table: str) -> None:
    """What a user does: ``pip install 'otel-slowstack[examples]'`` (here: the
    wheel of this checkout, dependencies from pip's configured index and
    cache), then ``otel-slowstack demo`` in a directory far from any checkout."""
    root = Path(__file__).parent.parent
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str, cwd: Path = tmp_path, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                                env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", SHOP_ACCOUNTS_TABLE=accounts_table))
        assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(root))
    (wheel,) = wheels.glob("otel_slowstack-*.whl")
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheel}[examples]")
    result = run(str(venv / "bin" / "otel-slowstack"), "demo", "--dir", str(elsewhere / "demo"), cwd=elsewhere, timeout=180)
    installed = run(str(venv / "bin" / "python"), "-c", "import otel_slowstack, sys; print(otel_slowstack.__file__)").stdout
    assert str(venv) in installed and str(root) not in installed
    assert "in count_price_collisions (examples/shop.py:" in section(result.stdout, "GET /prices")
    assert "verdict: waiting" in section(result.stdout, "GET /report")
    assert "Where the worker time goes" in result.stdout
