"""Jaeger and Tempo as they answer today: Jaeger's v3 API (its main line has
no v1 API any more), v1 for the releases that have it, answers stored in the
Jaeger and Tempo repositories' own tests served verbatim, and Tempo's search
paged without gaps. Fixtures: tests/report_data/README.md says where each
comes from."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from support.report_backends import Fixtures, JaegerV3, Tempo
from support.report_spans import REPORT_STACK, Recorder, expected_folded, sample, spans  # noqa: F401 (fixtures)

from otel_slowstack.report.command import build_report
from otel_slowstack.report.errors import ReportError
from otel_slowstack.report.renderers import render
from otel_slowstack.report.sources import Progress, Query, open_source

DATA = Path(__file__).parent / "report_data"
#: Jaeger at 8498073ff809b1a3923521920a9b1b017ea97ecf:
#: cmd/jaeger/internal/extension/jaegerquery/internal/apiv3/snapshots/{GetServices,FindTraces,GetTrace}.json
V3_SERVICES = (DATA / "jaeger" / "v3-GetServices.json").read_text()
V3_FIND_TRACES = (DATA / "jaeger" / "v3-FindTraces.json").read_text()
V3_GET_TRACE = (DATA / "jaeger" / "v3-GetTrace.json").read_text()
#: cmd/jaeger/internal/extension/jaegerquery/internal/fixture/otlp2jaeger-out.json
V1_TRACES = (DATA / "jaeger" / "v1-otlp2jaeger-out.json").read_text()
#: Grafana Tempo at ad33aa8fafc41a4ea58519f7b7a88b1aa1383224: cmd/tempo-vulture/testdata/trace.json
TEMPO_TRACE = (DATA / "tempo-vulture-trace.json").read_text()


def read_spans(url: str, query: Query) -> tuple:
    source = open_source(url, query)
    return source, list(source.spans(Progress()))


# -- Jaeger v3 ----------------------------------------------------------------


def test_jaeger_v3_pages_through_streamed_chunks(spans, expected_folded) -> None:
    with JaegerV3(spans) as jaeger:
        report = build_report(jaeger.url, Query(service="shop", page_size=2))
        searches = jaeger.paths("/api/v3/traces")
        v1 = jaeger.paths("/api/traces") + jaeger.paths("/api/services")
    assert render(report, "folded") == expected_folded
    assert report.source == f"Jaeger at {jaeger.url} (v3 API), service shop"
    assert not v1 and len(searches) >= 4
    assert all(q["query.service_name"] == "shop" and q["query.num_traces"] == "2" for _, q, _ in searches)
    assert "--limit" not in report.coverage


def test_jaeger_v3_answers_from_jaegers_own_tests() -> None:
    """The v3 gateway's snapshots: services, and a found trace of one SERVER span."""
    with Fixtures({"/api/v3/services": (200, V3_SERVICES), "/api/v3/traces": (200, V3_FIND_TRACES)}) as jaeger:
        source, found = read_spans(jaeger.url, Query(service="foo"))
        with pytest.raises(ReportError, match=r"knows no service 'shop' \(services it knows: foo\)"):
            read_spans(jaeger.url, Query(service="shop"))
    assert source.api == "v3"
    assert [(s.trace_id, s.span_id, s.kind, s.name) for s in found] == [
        ("00000000000000000000000000000001", "0000000000000002", "server", "foobar")]


def test_jaeger_v3_no_traces_found_is_an_empty_page() -> None:
    """``/api/v3/traces`` answers 404 "No traces found" when nothing matches."""
    missing = json.dumps({"error": {"httpCode": 404, "message": "No traces found"}})
    with Fixtures({"/api/v3/services": (200, V3_SERVICES), "/api/v3/traces": (404, missing)}) as jaeger:
        with pytest.raises(ReportError, match=r"Jaeger has no traces of service 'foo' in the last 1h"):
            read_spans(jaeger.url, Query(service="foo"))


def test_saved_v3_answers_are_files_too(spans, expected_folded, tmp_path: Path) -> None:
    """``curl .../api/v3/traces?... > saved.json``: streamed chunks, or one pretty document."""
    with JaegerV3(spans) as jaeger:
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        url = f"{jaeger.url}/api/v3/traces?query.service_name=shop&query.start_time_min={start}&query.start_time_max={end}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            saved = answer.read()
    streamed = tmp_path / "saved.json"
    streamed.write_bytes(saved)
    assert render(build_report(str(streamed), Query()), "folded") == expected_folded
    pretty = tmp_path / "trace.json"
    pretty.write_text(V3_GET_TRACE)
    with pytest.raises(ReportError, match=r"no otel-slowstack samples in .*trace.json \(1 spans read\)"):
        build_report(str(pretty), Query())


# -- Jaeger v1 ----------------------------------------------------------------


def test_jaeger_v1_answer_from_jaegers_own_tests() -> None:
    services = json.dumps({"data": ["telemetrygen"], "total": 1, "limit": 0, "offset": 0, "errors": None})
    with Fixtures({"/api/services": (200, services), "/api/traces": (200, V1_TRACES)}) as jaeger:
        source, found = read_spans(jaeger.url, Query(service="telemetrygen"))
    assert source.api == "v1"
    assert {(s.trace_id, s.span_id, s.parent_span_id, s.kind, s.name, s.service) for s in found} == {
        ("83a9efd15c1c98a977e0711cc93ee28b", "e127af99e3b3e074", "909541b92cf05311", "server", "okey-dokey-0", "telemetrygen")}
    assert found[0].attributes["peer.service"] == "telemetrygen-client"


def test_jaeger_before_2_15_that_knows_no_service() -> None:
    """Jaeger v1 answers ``{"data": null}`` when no service has sent spans yet."""
    empty = json.dumps({"data": None, "total": 0, "limit": 0, "offset": 0, "errors": None})
    with Fixtures({"/api/services": (200, empty)}) as jaeger:
        with pytest.raises(ReportError) as error:
            build_report(jaeger.url, Query(service="shop"))
    assert "knows no service 'shop' (services it knows: none yet)" in str(error.value)
    assert "format" not in str(error.value)


# -- Tempo --------------------------------------------------------------------


def _same_second_traces(count: int) -> list:
    """``count`` slow requests started within one second, newest last."""
    recorder = Recorder()
    second = (time.time_ns() // 1_000_000_000 - 120) * 1_000_000_000
    for i in range(count):
        recorder.request(second + i * 100_000_000, f"GET /r{i}", [sample(REPORT_STACK, 1, 0.1)])
    return recorder.spans()


def test_tempo_pages_one_second_with_many_traces_without_gaps() -> None:
    """3 traces in one second, ``--page-size 1``: all 3 read, each fetched once."""
    with Tempo(_same_second_traces(3)) as tempo:
        report = build_report(tempo.url, Query(page_size=1))
        fetched = [path for path, _, _ in tempo.paths("/api/traces/")]
        searches = [q for _, q, _ in tempo.paths("/api/search")]
    assert sorted(r.route for r in report.routes) == ["GET /r0", "GET /r1", "GET /r2"]
    assert len(fetched) == 3 == len(set(fetched))
    assert all(q["q"].endswith(" with (most_recent=true)") for q in searches)
    assert "--limit" not in report.coverage


def test_tempo_reads_the_newest_and_says_when_limit_cut() -> None:
    """Tempo answers the first matches unless asked for the most recent: the newest two are read."""
    with Tempo(_same_second_traces(5)) as tempo:
        report = build_report(tempo.url, Query(limit=2, page_size=1))
    assert sorted(r.route for r in report.routes) == ["GET /r3", "GET /r4"]
    assert "--limit 2 cut the answer, older traces were not read" in report.coverage
    header = render(report, "text").split("━━")[0]
    assert "--limit 2 cut the answer" in header


def test_tempo_trace_answer_from_tempos_own_test_data() -> None:
    """A trace as Tempo stores and answers it (base64 ids), found by a documented search answer."""
    trace_id = "MUkZX/sL7AU0e0jv6OzBsA=="
    hex_id = __import__("base64").b64decode(trace_id).hex()
    search = json.dumps({"traces": [{"traceID": hex_id.lstrip("0"), "rootServiceName": "tempo-vulture",
                                     "rootTraceName": "vulture-0", "startTimeUnixNano": str(time.time_ns()),
                                     "durationMs": 557}], "metrics": {"inspectedTraces": 1}})
    with Fixtures({"/api/echo": (200, "echo"), "/api/search": (200, search), f"/api/traces/{hex_id}": (200, TEMPO_TRACE)}) as tempo:
        _, found = read_spans(tempo.url, Query())
    assert len(found) > 5 and all(s.trace_id == hex_id and s.service == "tempo-vulture" for s in found)
    assert {s.name for s in found} >= {"vulture-68", "vulture-45"}


def test_tempo_metrics_give_whole_window_totals(spans) -> None:
    """Requests never sampled are not in the traces Tempo's search finds; its
    TraceQL metrics count them: the two fast ``GET /`` requests of the scenario."""
    with Tempo(spans, metrics=True) as tempo:
        report = build_report(tempo.url, Query())
        asked = [q["q"] for _, q, _ in tempo.paths("/api/metrics/query")]
    routes = {r.route: r for r in report.ranking}
    assert routes["GET /"].figures()[:2] == (2, pytest.approx(6.0))
    assert routes["GET /report"].figures() == (3, pytest.approx(16000.0), pytest.approx(2000.0), pytest.approx(12000.0),
                                               pytest.approx(12000.0))
    assert routes["GET /report"].requests == 3  # slow (sampled) requests: from the traces fetched
    assert "Tempo's TraceQL metrics" in report.coverage
    assert asked[0] == ("{ (kind = server || kind = consumer) } | count_over_time() "
                        "by (span.http.route, span.http.request.method, span.http.method)")
    text = render(report, "text")
    assert "figures cover every server and consumer span of the last 1h" in text


def test_tempo_without_metrics_says_what_the_figures_cover(spans) -> None:
    with Tempo(spans) as tempo:
        report = build_report(tempo.url, Query())
    assert "GET /" not in {r.route for r in report.ranking}
    assert "requests that were never sampled are not among them (this Tempo has no TraceQL metrics)" in report.coverage
