"""CAPTURE_LOCALS=true never exports a credential, whatever name it is held under.

The secrets below sit under innocent names; each must be absent from the
OTLP payload the SDK would send (``encode_spans``, the OTLP exporters'
own encoder), with whatever ``REDACT`` the user typed.
"""

from __future__ import annotations

import time

import pytest
from opentelemetry.trace import SpanKind

from support.spans import stacks

pytestmark = pytest.mark.unit

SECRETS = [
    "pg-S3cr3t", "redis-S3cr3t", "bearer-S3cr3t", "flag-S3cr3t", "flag-eq-S3cr3t", "pair-S3cr3t",
    "libpq-S3cr3t", "query-S3cr3t", "json-S3cr3t", "basic-S3cr3t", "bytes-S3cr3t", "header-line-S3cr3t",
    "ghp-S3cr3tTokenLongerThan16", "named-S3cr3t", "9f8e7d6c5b4a-list-S3cr3t", "9f8e7d6c5b4a-words-S3cr3t",
]


def handler_with_secrets_under_innocent_names() -> None:
    dsn = "postgres://shop:pg-S3cr3t@db.internal:5432/shop"  # noqa: F841
    database_url = "redis://:redis-S3cr3t@cache:6379/0"  # noqa: F841
    headers = [("Authorization", "Bearer bearer-S3cr3t"), ("Accept", "application/json")]  # noqa: F841
    argv = ["migrate", "--db-password", "flag-S3cr3t", "--verbose", "token", "9f8e7d6c5b4a-list-S3cr3t"]  # noqa: F841
    argv_eq = ["migrate", "--password=flag-eq-S3cr3t"]  # noqa: F841
    pair = ("password", "pair-S3cr3t")  # noqa: F841
    conninfo = "host=db user=shop password=libpq-S3cr3t dbname=shop"  # noqa: F841
    callback = "https://partner.example/hook?order=7&api_key=query-S3cr3t&x=1"  # noqa: F841
    body = '{"user": "shop", "password": "json-S3cr3t"}'  # noqa: F841
    line = "Authorization: Basic basic-S3cr3t"  # noqa: F841
    raw = b"grant_type=password&username=shop&password=bytes-S3cr3t"  # noqa: F841
    request_lines = ["GET / HTTP/1.1", "X-Api-Key: header-line-S3cr3t", "api key 9f8e7d6c5b4a-words-S3cr3t"]  # noqa: F841
    remote = "https://ghp-S3cr3tTokenLongerThan16@github.com/shop/shop.git"  # noqa: F841
    login = {"user": "shop", "credentials": ("shop", "named-S3cr3t")}  # noqa: F841
    ssn = "ssn-S3cr3t"  # noqa: F841
    order_id = 7  # noqa: F841
    time.sleep(0.8)


@pytest.fixture
def payload(make_sdk):
    """``payload(**settings)``: run the handler under a sampled SERVER span;
    return (the sample's stack, the OTLP protobuf bytes of every span)."""
    # The OTLP encoder comes with the exporters (the test extra), not with the SDK.
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")

    def run(**settings) -> tuple:
        sdk = make_sdk(threshold=150, max_samples=1, capture_locals=True, max_stack_bytes=16384, **settings)
        with sdk.tracer.start_as_current_span("GET /secrets", kind=SpanKind.SERVER):
            handler_with_secrets_under_innocent_names()
        (stack,) = stacks(sdk.finished("GET /secrets"))
        return stack, encoder.encode_spans(sdk.exporter.get_finished_spans()).SerializeToString()

    return run


@pytest.mark.parametrize(
    "redact", [None, "(?!)", "^ssn$", "zzz_matches_nothing"], ids=["default", "matches-nothing", "ssn", "zzz"]
)
def test_no_secret_reaches_the_exported_payload(payload, redact):
    stack, sent = payload(redact=redact)
    assert [s for s in SECRETS if s.encode() in sent] == [], stack
    # What is not secret is still there to debug with.
    assert "    order_id = 7" in stack
    assert "'postgres://shop:[REDACTED]@db.internal:5432/shop'" in stack
    assert "'redis://:[REDACTED]@cache:6379/0'" in stack
    assert "[('Authorization', [REDACTED]), ('Accept', 'application/json')]" in stack
    assert "['migrate', '--db-password', [REDACTED], '--verbose', 'token', [REDACTED]]" in stack
    assert "'host=db user=shop password=[REDACTED] dbname=shop'" in stack
    assert "order=7&api_key=[REDACTED]&x=1" in stack


def test_the_users_pattern_adds_names_and_takes_none_away(payload):
    stack, sent = payload(redact="^ssn$")
    assert b"ssn-S3cr3t" not in sent and "    ssn = [REDACTED]" in stack
    assert "    login = {'user': 'shop', 'credentials': [REDACTED]}" in stack


@pytest.mark.parametrize(
    "value, shown",
    [
        ("postgres://shop:PASS@db/shop", "'postgres://shop:[REDACTED]@db/shop'"),
        ("postgres://shop:p@ss@db/shop", "'postgres://shop:[REDACTED]@db/shop'"),  # an unescaped @ in it
        ("redis://:PASS@cache:6379/0", "'redis://:[REDACTED]@cache:6379/0'"),
        ("https://ghp_0123456789abcdefXYZ@github.com/a/b", "'https://[REDACTED]@github.com/a/b'"),
        ("ssh://git@github.com/a/b", "'ssh://git@github.com/a/b'"),
        ("redis://localhost:6379/0", "'redis://localhost:6379/0'"),
        ("postgres://shop:" + "P" * 2000 + "@db", "'postgres://shop:[REDACTED]'... (2019 chars)"),
        ("Authorization: Bearer PASS", "'Authorization: [REDACTED]'"),
        ("curl -H 'Authorization: Basic PASS'", "\"curl -H 'Authorization: [REDACTED]'\""),
        ("sent Bearer PASS upstream", "'sent Bearer [REDACTED] upstream'"),
        ("x=--password=PASS", "'x=--password=[REDACTED]'"),
        ('{"user": "u", "secret": "PASS"}', "'{\"user\": \"u\", \"secret\": [REDACTED]}'"),
        ("token expired at noon", "'token expired at noon'"),
        (b"password=PASS&x=1", "b'password=[REDACTED]&x=1'"),
        (bytearray(b"auth: PASS"), "bytearray(b'auth: [REDACTED]')"),
        (("password", "PASS"), "('password', [REDACTED])"),
        (("GET", "/orders"), "('GET', '/orders')"),
        (["-p", "8000", "--api-key", "PASS"], "['-p', '8000', '--api-key', [REDACTED]]"),
        ({"Cookie": "PASS", b"session": "PASS", 1: "one"}, "{'Cookie': [REDACTED], b'session': [REDACTED], 1: 'one'}"),
    ],
)
def test_what_a_value_looks_like(value, shown):
    from otel_slowstack.capture.local_variables import render
    from otel_slowstack.settings import Settings

    assert render(value, Settings().redact) == shown
    assert "PASS" not in render(value, Settings.from_env({}, redact="(?!)").redact)
