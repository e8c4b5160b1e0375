"""Requests that did not finish, from spans written by the real SDK and
exporter: grouped per route by the ``slowstack.subject.*`` attributes of
their snapshot spans when present, else under ``(request never ended)``;
the outcome is the trigger of the request's last sample."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.trace import SpanKind, set_span_in_context

from support.report_spans import MS, REPORT_STACK, Recorder, sample, write_otlp_file

from otel_slowstack.report.command import build_report
from otel_slowstack.report.renderers import render
from otel_slowstack.report.sources import Query

START = 1_700_000_000_000_000_000


def killed_snapshot(recorder: Recorder, start_ns: int, subject: dict) -> None:
    """A watched span that never ends (its worker was SIGKILLed) and its exported snapshot span."""
    parent = recorder.tracer.start_span(subject.get("slowstack.subject", "x"), kind=SpanKind.SERVER, start_time=start_ns)
    at = start_ns + 10_000 * MS
    child = recorder.tracer.start_span("slowstack.snapshot", context=set_span_in_context(parent), start_time=at,
                                       attributes=subject)
    child.add_event("slowstack.sample", sample(REPORT_STACK, 0, 0.0, "snapshot", None, 10_000.0), timestamp=at)
    child.end(end_time=at)


def test_killed_requests_grouped_by_their_subject(tmp_path: Path) -> None:
    recorder = Recorder()
    killed_snapshot(recorder, START, {"slowstack.subject": "GET /export/{id}", "slowstack.subject.http.route": "/export/{id}",
                                      "slowstack.subject.http.request.method": "GET", "slowstack.subject.url.path": "/export/7"})
    killed_snapshot(recorder, START + 1, {"slowstack.subject": "GET", "slowstack.subject.http.request.method": "GET",
                                          "slowstack.subject.url.path": "/export/8"})
    killed_snapshot(recorder, START + 2, {"slowstack.subject": "run/shop.tasks.rebuild",
                                          "slowstack.subject.messaging.system": "celery",
                                          "slowstack.subject.celery.task_name": "shop.tasks.rebuild"})
    killed_snapshot(recorder, START + 3, {})  # written before snapshot spans named their subject
    # Finished, but cut short: the last sample's trigger says how.
    recorder.request(START + 4, "GET /export/{id}", [sample(REPORT_STACK, 1, 0.1), sample(REPORT_STACK, 2, 0.1, "interrupt")])
    recorder.request(START + 5, "GET /report", [sample(REPORT_STACK, 1, 0.1), sample(REPORT_STACK, 2, 0.0, "shutdown")])
    recorder.request(START + 6, "GET /report", [sample(REPORT_STACK, 1, 0.1), sample(REPORT_STACK, 2, 0.0, "interval")])
    report = build_report(str(write_otlp_file(tmp_path / "traces.jsonl", recorder.spans())), Query())

    killed = {r.route: dict(r.killed) for r in report.killed_routes()}
    assert killed == {
        "GET /export/{id}": {"killed": 1, "interrupt": 1},
        "GET /export/8": {"killed": 1},
        "shop.tasks.rebuild": {"killed": 1},
        "(request never ended)": {"killed": 1},
        "GET /report": {"shutdown": 1},
    }
    assert report.killed == 6
    text = render(report, "text")
    assert "GET /export/{id}: 1 killed, its span never arrived; 1 interrupted" in text
    folded = render(report, "folded").splitlines()
    assert "GET /export/{id};[interrupt];" in "\n".join(folded) and "shop.tasks.rebuild;[killed];" in "\n".join(folded)
    assert sum(int(line.rsplit(" ", 1)[1]) for line in folded) == report.samples
    names = {p["name"] for p in json.loads(render(report, "speedscope"))["profiles"]}
    assert "GET /report (2 slow requests, 4 samples, 1 did not finish: 1 cut short at shutdown)" in names
