"""``otel-slowstack report URL`` against local servers answering like Jaeger's
query API and Grafana Tempo: same findings as from the file, paging,
authentication headers, and one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support.report_backends import Jaeger, Tempo
from support.report_spans import expected_folded, spans  # noqa: F401 (fixtures)

from otel_slowstack.report.command import build_report
from otel_slowstack.report.errors import ReportError
from otel_slowstack.report.renderers import render
from otel_slowstack.report.sources import Query

BIN = Path(sys.executable).parent


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "otel-slowstack"), *args], capture_output=True, text=True, timeout=60)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- Jaeger -------------------------------------------------------------------


def test_jaeger_pages_through_traces_and_finds_what_the_file_has(spans, expected_folded) -> None:
    with Jaeger(spans) as jaeger:
        report = build_report(jaeger.url, Query(service="shop", page_size=2))
        searches = jaeger.paths("/api/traces")
    assert render(report, "folded") == expected_folded
    assert report.source == f"Jaeger at {jaeger.url} (v1 API), service shop"
    # 8 traces, 2 per page: each next page ends before the previous page's earliest trace.
    assert len(searches) >= 4
    ends = [int(q["end"]) for _, q, _ in searches]
    assert ends == sorted(ends, reverse=True) and len(set(ends)) == len(ends)
    assert all(q["service"] == "shop" and q["limit"] == "2" for _, q, _ in searches)
    assert all(int(q["end"]) - int(q["start"]) <= 3600 * 10**6 for _, q, _ in searches)


def test_jaeger_through_the_command_with_a_bearer_token(spans) -> None:
    with Jaeger(spans, token="s3cret") as jaeger:
        refused = cli("report", jaeger.url, "--service", "shop", "--backend", "jaeger")
        result = cli("report", jaeger.url, "--service", "shop", "--since", "1h",
                     "--header", "Authorization: Bearer s3cret", "-H", "X-Scope-OrgID: team-a")
        headers = jaeger.requests[-1][2]
    assert "answered 401 Unauthorized: give credentials with --header 'Authorization: Bearer TOKEN'" in one_line_error(refused)
    assert result.returncode == 0, result.stderr
    assert "GET /report" in result.stdout and "verdict: waiting" in result.stdout
    assert "N+1 statements:" in result.stdout
    assert headers.get("X-Scope-OrgID") == "team-a"


def test_jaeger_limit_stops_paging(spans) -> None:
    with Jaeger(spans) as jaeger:
        report = build_report(jaeger.url, Query(service="shop", page_size=2, limit=3))
    assert report.requests <= 3
    assert "--limit 3 cut the answer, older traces were not read" in report.coverage
    assert "--limit 3 cut the answer" in render(report, "text").split("━━")[0]


def test_jaeger_unknown_service_names_the_known_ones(spans) -> None:
    with Jaeger(spans) as jaeger:
        message = one_line_error(cli("report", jaeger.url, "--service", "shopp"))
        missing = one_line_error(cli("report", jaeger.url))
    assert f"Jaeger at {jaeger.url} knows no service 'shopp' (services it knows: jaeger-all-in-one, shop)" in message
    assert "Jaeger needs --service NAME (services it knows: jaeger-all-in-one, shop)" in missing


def test_jaeger_empty_result(spans) -> None:
    with Jaeger(spans) as jaeger:
        message = one_line_error(cli("report", jaeger.url, "--service", "shop", "--since", "1m"))
    assert "Jaeger has no traces of service 'shop' in the last 1m" in message


# -- Tempo --------------------------------------------------------------------


def test_tempo_searches_with_traceql_pages_and_fetches_each_trace(spans, expected_folded) -> None:
    with Tempo(spans) as tempo:
        report = build_report(tempo.url, Query(page_size=2, concurrency=3))
        searches = tempo.paths("/api/search")
        fetched = tempo.paths("/api/traces/")
    assert render(report, "folded") == expected_folded
    q = searches[0][1]["q"]
    assert q == '{ event:name = "slowstack.sample" || event:name = "slowstack.n_plus_one" } with (most_recent=true)'
    assert len(searches) >= 4 and all(s[1]["limit"] == "2" for s in searches)
    # The 7 traces with samples (the fast ones never match), each fetched once as JSON.
    assert len(fetched) == 7 == len({path for path, _, _ in fetched})
    assert all(headers.get("Accept") == "application/json" for _, _, headers in fetched)


def test_tempo_through_the_command_with_service_and_token(spans) -> None:
    with Tempo(spans, token="t0ken") as tempo:
        refused = cli("report", tempo.url, "--backend", "tempo")
        result = cli("report", tempo.url, "--service", "shop", "-H", "Authorization: Bearer t0ken", "-f", "folded")
        q = tempo.paths("/api/search")[-1][1]["q"]
    assert "answered 401 Unauthorized" in one_line_error(refused)
    assert result.returncode == 0, result.stderr
    assert q == '{ resource.service.name = "shop" && (event:name = "slowstack.sample" || event:name = "slowstack.n_plus_one") } with (most_recent=true)'
    assert "GET /prices;full_dispatch_request (flask/app.py:917);dispatch_request (flask/app.py:902);prices (app/views.py:60);count_collisions (app/views.py:71) 4" in result.stdout.splitlines()


def test_older_tempo_without_event_scopes_and_hex_resource_spans(spans, expected_folded) -> None:
    with Tempo(spans, style="resourceSpans", event_scopes=False) as tempo:
        report = build_report(tempo.url, Query(backend="tempo"))
        queries = [q["q"] for _, q, _ in tempo.paths("/api/search")]
    assert render(report, "folded") == expected_folded
    assert "event:name" in queries[0] and "most_recent" in queries[0]
    assert queries[-1] == '{ span.slowstack.samples > 0 || name = "slowstack.snapshot" }'
    assert any("may not be the newest" in n for n in report.notes)


def test_tempo_unknown_service_and_empty_result(spans) -> None:
    with Tempo(spans) as tempo:
        unknown = one_line_error(cli("report", tempo.url, "--service", "nope"))
        empty = one_line_error(cli("report", tempo.url, "--since", "2m"))
    assert f"Tempo at {tempo.url} knows no service 'nope' (services it knows: shop)" in unknown
    assert "Tempo found no traces with otel-slowstack samples in the last 2m" in empty


# -- what goes wrong on the way -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert f"cannot reach {url}: connection refused" in one_line_error(cli("report", url, "--service", "shop"))


def test_a_backend_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list = []
    stop = threading.Event()

    def hold() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        message = one_line_error(cli("report", url, "--backend", "jaeger", "--service", "shop", "--timeout", "0.5"))
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
    assert f"{url}/api/v3/services did not answer within 0.5 s (raise --timeout?)" in message


def test_something_that_is_neither_backend(spans) -> None:
    with Jaeger(spans) as jaeger:
        url = jaeger.url + "/not-here"
        message = one_line_error(cli("report", url))
    assert "answers neither as Jaeger's query API (/api/v3/services, /api/services) nor as Grafana Tempo (/api/echo)" in message


def test_server_errors_and_bad_headers(spans) -> None:
    class Broken(Tempo):
        def route(self, handler, path, query):
            if path == "/api/search":
                handler.answer(500, "internal error: ingester unavailable\nmore detail\n", "text/plain")
            else:
                super().route(handler, path, query)

    with Broken(spans) as tempo:
        with pytest.raises(ReportError, match=r"/api/search answered 500 Internal Server Error: internal error: ingester unavailable$"):
            build_report(tempo.url, Query())
        assert "--header 'Authorization' is not 'Name: value'" in one_line_error(cli("report", tempo.url, "-H", "Authorization"))


def test_files_saved_from_jaeger_or_tempo_read_like_the_apis(spans, expected_folded, tmp_path) -> None:
    """A trace downloaded from Jaeger's UI ({"data": [...]}) or Tempo's API ({"batches": ...})."""
    import json

    from support.report_spans import by_trace, jaeger_trace, tempo_document

    traces = by_trace(spans)
    jaeger_file = tmp_path / "jaeger.json"
    jaeger_file.write_text(json.dumps({"data": [jaeger_trace(t) for t in traces.values()]}, indent=1))
    tempo_file = tmp_path / "tempo.jsonl"
    tempo_file.write_text("".join(json.dumps(tempo_document(t)) + "\n" for t in traces.values()))
    for path in (jaeger_file, tempo_file):
        assert render(build_report(str(path), Query()), "folded") == expected_folded
