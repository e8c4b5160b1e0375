"""Every name on the wire, in one module, spelled as the contract says: pure.

The names below are copied from the project's public contract (CONTRACT.md,
mirrored in the README's tables); dashboards and queries depend on them, so a
rename must fail here first.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from otel_slowstack import conventions, counters
from otel_slowstack.settings import Settings
from otel_slowstack.watched import Watched

pytestmark = pytest.mark.unit

PACKAGE = Path(conventions.__file__).parent
README = PACKAGE.parent / "README.md"

#: constant in ``conventions`` -> its spelling in the contract
CONTRACT = {
    "SAMPLE_EVENT": "slowstack.sample",
    "N_PLUS_ONE_EVENT": "slowstack.n_plus_one",
    "SNAPSHOT_SPAN": "slowstack.snapshot",
    "CODE_STACKTRACE": "code.stacktrace",
    "THREAD_ID": "thread.id",
    "THREAD_NAME": "thread.name",
    "SAMPLE_INDEX": "slowstack.sample.index",
    "ELAPSED_MS": "slowstack.elapsed_ms",
    "TRIGGER": "slowstack.trigger",
    "CPU_RATIO": "slowstack.cpu_ratio",
    "DB_COUNT": "slowstack.db.count",
    "DB_DURATION_MS": "slowstack.db.duration_ms",
    "HTTP_COUNT": "slowstack.http.count",
    "HTTP_DURATION_MS": "slowstack.http.duration_ms",
    "IN_FLIGHT": "slowstack.in_flight",
    "LOOP_BLOCKED_BY": "slowstack.loop_blocked_by",
    "SAMPLES": "slowstack.samples",
    "REPEAT_COUNT": "slowstack.repeat.count",
    "DB_QUERY_TEXT": "db.query.text",
    "DB_SYSTEM_NAME": "db.system.name",
    "DB_SYSTEM": "db.system",
    "HTTP_REQUEST_METHOD": "http.request.method",
    "HTTP_METHOD": "http.method",
    "HTTP_ROUTE": "http.route",
    # documented in the README beside the contract's
    "INTERRUPT_WITHHELD": "slowstack.interrupt.withheld",
    "SUBJECT": "slowstack.subject",
}
CONTRACT_TRIGGERS = ("threshold", "interval", "snapshot", "signal", "interrupt", "shutdown")


@pytest.mark.parametrize("constant, spelling", sorted(CONTRACT.items()))
def test_each_contract_name_is_spelled_as_the_contract_says(constant: str, spelling: str) -> None:
    assert getattr(conventions, constant) == spelling


def test_the_trigger_values_are_the_contracts() -> None:
    assert conventions.TRIGGERS == CONTRACT_TRIGGERS
    assert conventions.WITHHELD_UNSCOPED == "unscoped"


def _our_names() -> set:
    return {v for k, v in vars(conventions).items() if k.isupper() and isinstance(v, str)}


def test_every_slowstack_name_in_the_readme_is_defined_here() -> None:
    named = set(re.findall(r"`(slowstack\.[a-z_.]*[a-z_*])", README.read_text(encoding="utf-8")))
    assert named, "the README's attribute tables moved?"
    ours = _our_names()
    subjects = {conventions.SUBJECT_PREFIX + key for key, _ in conventions.SUBJECT_KEYS}
    for name in named:
        if name.endswith(".*"):
            assert any(n.startswith(name[:-1]) for n in ours | subjects), name
        else:
            assert name in ours | subjects, name


def _string_constants(path: Path) -> list:
    """``(line, text)`` of every string constant in a module, f-string parts included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_other_module_spells_a_name_of_ours() -> None:
    """One home: a ``slowstack.*`` name or a convention key written out anywhere
    else in the package is a second spelling that can drift."""
    keys = {v for v in _our_names() if "." in v and " " not in v and "/" not in v}
    strays = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "conventions.py":
            continue
        for line, text in _string_constants(path):
            if text.startswith("slowstack.") or text in keys:
                strays.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
    assert strays == []


# -- what kind of client call a span is ---------------------------------------------

KINDS = [
    ({"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, "db"),
    ({"db.system": "postgresql", "db.statement": "SELECT 1"}, "db"),
    ({"db.system": "redis"}, "db"),
    ({"db.system.name": "sqlite", "db.system": "sqlite"}, "db"),
    ({"http.request.method": "GET", "url.full": "http://stock/items"}, "http"),
    ({"http.method": "POST", "http.url": "http://stock/items"}, "http"),
    # a database reached over HTTP is a database call
    ({"db.system": "elasticsearch", "http.method": "GET"}, "db"),
    ({"rpc.system": "grpc"}, None),
    ({"messaging.system": "kafka"}, None),
    ({}, None),
    (None, None),
]


@pytest.mark.parametrize("attributes, kind", KINDS)
def test_call_kind_under_old_and_new_conventions(attributes, kind) -> None:
    assert conventions.call_kind(attributes) == kind


@pytest.mark.parametrize("attributes, kind", [k for k in KINDS if k[0] is not None])
def test_the_hot_path_counts_what_call_kind_says(attributes, kind) -> None:
    """``counters.child_ended`` spells the classification out for speed; it must agree."""
    watched = Watched(object(), 1, 0, None, 0, None)
    # A real SDK span: the hot path reads its own fields, not its properties.
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    span = tracer.start_span("call", kind=SpanKind.CLIENT, attributes=attributes, start_time=1_000)
    span.end(end_time=3_000)
    counters.child_ended(watched, span, Settings())
    db_count, _, http_count, _ = watched.calls.totals() if watched.calls is not None else (0, 0, 0, 0)
    counted = "db" if db_count else "http" if http_count else None
    assert counted == kind


def test_statement_text_reads_either_key_and_ignores_non_text() -> None:
    assert conventions.statement_text({"db.query.text": "SELECT 1"}) == "SELECT 1"
    assert conventions.statement_text({"db.statement": "SELECT 2"}) == "SELECT 2"
    assert conventions.statement_text({"db.query.text": "", "db.statement": "SELECT 3"}) == "SELECT 3"
    assert conventions.statement_text({"db.statement": 5}) is None
    assert conventions.statement_text({}) is None


def test_request_method_and_peer_host() -> None:
    assert conventions.request_method({"http.request.method": "GET", "http.method": "POST"}) == "GET"
    assert conventions.request_method({"http.request.method": "", "http.method": "POST"}) == "POST"
    assert conventions.request_method({"http.request.method": 7}) is None
    assert conventions.request_method({}) is None
    assert conventions.peer_host({"server.address": "stock"}) == "stock"
    assert conventions.peer_host({"net.peer.name": "stock"}) == "stock"
    assert conventions.peer_host({"url.full": "https://user:pw@stock:8443/x?q=1"}) == "stock"
    assert conventions.peer_host({"http.url": "http://old/x"}) == "old"
    assert conventions.peer_host({}) is None


# -- the name a request goes by --------------------------------------------------------


def test_route_label_puts_the_method_before_the_route() -> None:
    assert conventions.route_label({"http.route": "/orders/{id}", "http.request.method": "GET"}, "x") == "GET /orders/{id}"
    assert conventions.route_label({"url.path": "/orders/7", "http.method": "POST"}, "x") == "POST /orders/7"
    assert conventions.route_label({"http.route": "GET /orders", "http.method": "GET"}, "x") == "GET /orders"
    assert conventions.route_label({"http.request.method": "GET"}, "GET /") == "GET /"
    assert conventions.route_label(None, "process invoice") == "process invoice"


def test_what_the_writer_puts_on_a_snapshot_the_report_reads_back() -> None:
    request = {"http.route": "/orders/{id}", "http.method": "GET", "url.path": "/orders/7?token=x"}
    written = conventions.subject_attributes("GET /orders/{id}", request)
    assert written == {
        "slowstack.subject": "GET /orders/{id}",
        "slowstack.subject.http.route": "/orders/{id}",
        "slowstack.subject.http.request.method": "GET",
    }
    assert conventions.subject_route(written) == "GET /orders/{id}"

    unrouted = conventions.subject_attributes("GET", {"http.target": "/orders/7?token=x", "http.method": "GET"})
    assert unrouted["slowstack.subject.url.path"] == "/orders/7"
    assert conventions.subject_route(unrouted) == "GET /orders/7"


def test_a_celery_task_is_named_by_its_task_before_the_instrumentation_says() -> None:
    written = conventions.subject_attributes("run/tasks.reindex", {}, conventions.CELERY_SCOPE)
    assert written["slowstack.subject.celery.task_name"] == "tasks.reindex"
    assert written["slowstack.subject.messaging.system"] == "celery"
    assert conventions.subject_route(written) == "tasks.reindex"
    assert "slowstack.subject.celery.task_name" not in conventions.subject_attributes("run/x", {}, "other.scope")


def test_a_subject_says_nothing_on_older_data_and_a_destination_names_a_message() -> None:
    assert conventions.subject_route({}) is None
    assert conventions.subject_route({"slowstack.subject": "process"}) == "process"
    assert conventions.subject_route({"slowstack.subject": "", "slowstack.subject.messaging.destination.name": "q"}) == "q"
