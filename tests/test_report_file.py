"""``otel-slowstack report FILE``: an OTLP JSON file written by the real
``otlp_json_file`` exporter, through aggregation, to every format."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import jsonschema
import pytest

from support.report_spans import N_PLUS_ONE_SQL, REPORT_STACK, Recorder, sample, shop_spans, write_otlp_file

from otel_slowstack.cli import main
from otel_slowstack.report.command import build_report
from otel_slowstack.report.renderers import render
from otel_slowstack.report.sources import Query

BIN = Path(sys.executable).parent
SCHEMA = Path(__file__).parent / "report_data" / "speedscope-file-format-schema.json"


@pytest.fixture
def shop_file(tmp_path: Path) -> Path:
    return write_otlp_file(tmp_path / "traces.jsonl", shop_spans())


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(BIN / "otel-slowstack"), *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_text_report_per_route(shop_file: Path) -> None:
    result = cli("report", str(shop_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "7 slow requests, 16 samples, 4 routes" in out
    # Routes in order of samples, each with its counts and verdict.
    sections = out.split("━━ ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["GET /report", "GET /prices", "(request never ended)", "GET /orders"]
    report, prices, never, orders = sections
    assert "3 slow requests, 10 samples" in report  # 9 samples on the spans + 1 from a snapshot span
    assert "verdict: waiting: CPU 2% of wall time; in fetch_rates (app/views.py:52)" in report
    assert "in flight: GET api.rates.example in 100% of samples, up to 10000 ms" in report
    assert "verdict: computing: CPU 95% of wall time; in count_collisions (app/views.py:71)" in prices
    # Hottest frames: innermost share, on-stack share, app or lib, file:line, function.
    rows = [line.split() for line in report.splitlines() if line.strip().endswith(("readinto", "fetch_rates", "dispatch_request"))]
    assert rows[0] == ["100%", "100%", "lib", "socket.py:720", "readinto"]
    assert rows[1] == ["0%", "100%", "app", "app/views.py:52", "fetch_rates"]
    assert ["0%", "100%", "lib", "flask/app.py:902", "dispatch_request"] in rows
    assert "100% (10)  … › report › fetch_rates › readinto (socket.py:720)" in report
    # The N+1 with its count and the application frame that issued it.
    assert f"50x in 1 request: {N_PLUS_ONE_SQL}  at customer_name (app/repository.py:12)" in orders
    assert "N+1: 50x SELECT name FROM customers" in orders
    assert "1 slow request, 1 sample" in never


def test_route_filter_and_top(shop_file: Path) -> None:
    result = cli("report", str(shop_file), "--route", "/pri*", "--top", "1")
    assert result.returncode == 0, result.stderr
    assert "GET /prices" in result.stdout and "GET /report" not in result.stdout
    assert "count_collisions" in result.stdout and "dispatch_request (" not in result.stdout.split("hottest stacks")[0]


def test_folded(shop_file: Path) -> None:
    result = cli("report", str(shop_file), "--format", "folded")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        "GET /report;full_dispatch_request (flask/app.py:917);dispatch_request (flask/app.py:902);"
        "report (app/views.py:40);fetch_rates (app/views.py:52);readinto (socket.py:720) 10"
    ) in lines
    assert "GET /orders;full_dispatch_request (flask/app.py:917);[frames elided];orders (app/views.py:90);customer_name (app/repository.py:12) 1" in lines
    for line in lines:
        stack, count = line.rsplit(" ", 1)
        assert int(count) > 0 and stack.count(";") >= 1
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == 16


def test_speedscope_validates_against_the_file_format_schema(shop_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "profile.speedscope.json"
    result = cli("report", str(shop_file), "--format", "speedscope", "-o", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert [p["name"].split(" (")[0] for p in document["profiles"]] == ["GET /report", "GET /prices", "(request never ended)", "GET /orders"]
    frames = document["shared"]["frames"]
    report = document["profiles"][0]
    assert report["type"] == "sampled" and sum(report["weights"]) == report["endValue"] == 10
    innermost = frames[report["samples"][0][-1]]
    assert innermost == {"name": "readinto", "file": "/usr/lib/python3.12/socket.py", "line": 720}
    for profile in document["profiles"]:
        assert len(profile["samples"]) == len(profile["weights"])
        assert all(0 <= i < len(frames) for stack in profile["samples"] for i in stack)


def test_a_broken_speedscope_document_fails_the_schema() -> None:
    """The schema check can fail: a sampled profile without weights is rejected."""
    bad = {"$schema": "https://www.speedscope.app/file-format-schema.json", "shared": {"frames": [{"name": "f"}]},
           "profiles": [{"type": "sampled", "name": "x", "unit": "none", "startValue": 0, "endValue": 1, "samples": [[0]]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA.read_text()))


def test_standard_input_and_gzip(shop_file: Path, tmp_path: Path) -> None:
    import gzip

    result = cli("report", "-", "-f", "folded", stdin=shop_file.read_text())
    assert result.returncode == 0, result.stderr
    packed = tmp_path / "traces.jsonl.gz"
    packed.write_bytes(gzip.compress(shop_file.read_bytes()))
    again = cli("report", str(packed), "-f", "folded")
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout


def test_snapshot_listed_before_or_after_its_parent_counts_for_its_route(tmp_path: Path) -> None:
    """A file holds a snapshot span before its parent; a backend's trace may list it after."""
    spans = shop_spans()
    for order in (spans, list(reversed(spans))):
        path = tmp_path / f"order-{id(order)}.jsonl"
        report = build_report(str(write_otlp_file(path, order)), Query())
        routes = {r.route: r for r in report.routes}
        assert routes["GET /report"].samples == 10 and routes["GET /report"].requests == 3
        assert routes["GET /report"].triggers["snapshot"] == 1
        assert routes["(request never ended)"].samples == 1


def test_noise_lines_are_skipped_with_a_note(shop_file: Path, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy.jsonl"
    noisy.write_text("[2026-01-01] starting\n" + shop_file.read_text() + '{"resourceLogs": []}\n')
    result = cli("report", str(noisy))
    assert result.returncode == 0, result.stderr
    assert "note: 2 records skipped: line 1 is not JSON (" in result.stdout and " and 1 more" in result.stdout


def test_a_pretty_printed_document_is_read_whole(shop_file: Path, tmp_path: Path) -> None:
    lines = shop_file.read_text().splitlines()
    merged = {"resourceSpans": [rs for line in lines for rs in json.loads(line)["resourceSpans"]]}
    pretty = tmp_path / "trace.json"
    pretty.write_text(json.dumps(merged, indent=2))
    result = cli("report", str(pretty), "-f", "folded")
    assert result.returncode == 0, result.stderr
    assert result.stdout == cli("report", str(shop_file), "-f", "folded").stdout


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("", "is empty: no spans were written to it yet"),
        ("this is not json\n", "is not OTLP JSON: line 1 is not JSON"),
        ('{"resourceLogs": []}\n', "is not OTLP JSON: line 1 is JSON but not OTLP trace data"),
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "GET /", "kind": 2}]}]}]}\n', "no otel-slowstack samples in"),
        ('{"resourceSpans": [', "is not JSON"),
    ],
)
def test_clear_one_line_errors(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "input.jsonl"
    if content is not None:
        path.write_text(content)
    result = cli("report", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("otel-slowstack report: error: ")


def test_bad_arguments_are_one_line_errors(shop_file: Path, tmp_path: Path) -> None:
    assert "--since 'soon' is not a duration" in cli("report", str(shop_file), "--since", "soon").stderr
    unwritable = cli("report", str(shop_file), "-o", str(tmp_path / "missing" / "out.txt"))
    assert unwritable.returncode == 1 and "cannot write" in unwritable.stderr and "Traceback" not in unwritable.stderr


def _write_big_file(path: Path, batches: int) -> int:
    """``batches`` lines, each one exported batch of 4 slow spans (real encoder, ids varied)."""
    recorder = Recorder()
    start = 1_700_000_000_000_000_000
    for i in range(4):
        recorder.request(start + i, "GET /report", [sample(REPORT_STACK, j + 1, 0.01) for j in range(5)])
    from support.report_spans import otlp_document

    line = json.dumps(otlp_document(recorder.spans()), separators=(",", ":"))
    span_ids = [json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][k]["spanId"] for k in range(4)]
    with open(path, "w") as out:
        for n in range(batches):
            text = line
            for k, span_id in enumerate(span_ids):
                text = text.replace(span_id, f"{n * 4 + k:016x}")
            out.write(text + "\n")
    return path.stat().st_size


def _peak_while_reading(path: Path) -> tuple:
    tracemalloc.start()
    try:
        report = build_report(str(path), Query())
        return tracemalloc.get_traced_memory()[1], report
    finally:
        tracemalloc.stop()


def test_large_files_stream_in_bounded_memory(tmp_path: Path, monkeypatch) -> None:
    """Ten times the input costs no more memory. The one structure that grows
    with the number of requests (span ids kept to link late snapshot spans to
    their request) is capped; a small cap here shows what happens past it."""
    from otel_slowstack.report import aggregate

    monkeypatch.setattr(aggregate, "MAX_KNOWN_SPANS", 100)
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    small_size = _write_big_file(small, 100)
    large_size = _write_big_file(large, 1000)
    assert large_size > 9 * small_size and large_size > 20_000_000
    small_peak, _ = _peak_while_reading(small)
    large_peak, report = _peak_while_reading(large)
    assert report.samples == 1000 * 4 * 5 and report.requests == 1000 * 4
    assert large_peak < small_peak * 1.3 + 200_000, (small_peak, large_peak)
    assert large_peak < large_size / 20


def test_renderers_share_one_report(shop_file: Path) -> None:
    report = build_report(str(shop_file), Query())
    assert "GET /prices" in render(report, "text")
    assert render(report, "folded").count("\n") == sum(len(r.stacks) for r in report.routes)
    assert json.loads(render(report, "speedscope"))["profiles"]
    assert render(report, "html").startswith("<!DOCTYPE html>")


def test_without_the_report_extra_it_says_which_pip_install(shop_file: Path) -> None:
    code = (
        "import sys; sys.modules['rich'] = None; sys.modules['httpx'] = None\n"
        "from otel_slowstack.cli import main\n"
        f"sys.exit(main(['report', {str(shop_file)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "pip install 'otel-slowstack[report]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_instrumentation_never_imports_the_report() -> None:
    code = (
        "import sys\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "import otel_slowstack\n"
        "provider = TracerProvider(); provider.add_span_processor(otel_slowstack.SlowStackProcessor(threshold=50))\n"
        "otel_slowstack.SlowStackInstrumentor()\n"
        "with provider.get_tracer('t').start_as_current_span('x'): pass\n"
        "provider.shutdown()\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('otel_slowstack.report', 'otel_slowstack.cli', 'otel_slowstack.demo', 'rich', 'httpx')))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_main_without_a_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "report" in capsys.readouterr().err
