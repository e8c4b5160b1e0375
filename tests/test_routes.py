"""Route keys and pattern matching: pure."""

from __future__ import annotations

import pytest

from otel_slowstack.conventions import route_key
from otel_slowstack.routes import RouteRule, RouteTable
from otel_slowstack.settings import MS, parse_routes

pytestmark = pytest.mark.unit


def table(text: str) -> RouteTable:
    return RouteTable(parse_routes(text))


def test_key_prefers_route_then_path_then_name():
    assert route_key({"http.route": "/orders/<int:id>", "url.path": "/orders/7"}, "GET") == "/orders/<int:id>"
    assert route_key({"url.path": "/orders/7"}, "GET /orders/7") == "/orders/7"
    assert route_key({"http.target": "/orders/7?x=1"}, "GET") == "/orders/7"
    assert route_key({"http.url": "http://shop:8000/orders/7?x=1"}, "GET") == "/orders/7"
    assert route_key({"url.full": "https://shop"}, "GET") == "/"
    assert route_key({}, "process invoice") == "process invoice"
    assert route_key(None, "GET /") == "GET /"


def test_wildcards_and_first_match_wins():
    routes = table("/reports/*=30s,/healthz=off,/api/*/export=5s,*=2s")
    assert routes.lookup("/reports/2024/q1.pdf").threshold_ns == 30_000 * MS
    assert routes.lookup("/healthz").threshold_ns is None
    assert routes.lookup("/healthz/deep").threshold_ns == 2000 * MS
    assert routes.lookup("/api/v2/export").threshold_ns == 5000 * MS
    assert routes.lookup("/api/v2/exports").threshold_ns == 2000 * MS


def test_no_match_and_exactness():
    routes = table("/reports/*=30s")
    assert routes.lookup("/report") is None
    assert routes.lookup("/reports/") is not None
    assert routes.lookup("x/reports/1") is None


def test_regex_characters_are_literal():
    routes = RouteTable((RouteRule.of("/a.b/(x)+", 1),))
    assert routes.lookup("/a.b/(x)+") is not None
    assert routes.lookup("/aXb/xx") is None


def test_span_name_patterns_for_consumers():
    routes = table("orders.process=10s")
    assert routes.lookup(route_key({}, "orders.process")).threshold_ns == 10_000 * MS


def test_cache_stays_bounded():
    routes = table("/a/*=1s")
    for i in range(10_000):
        routes.lookup(f"/b/{i}")
    assert len(routes._cache) <= 2048


def test_a_hostile_path_against_many_wildcards_matches_in_linear_time():
    """Seen with a regex: ``/*a*a*a*a*b`` against a 400-character path took 45 s
    in ``on_start``, holding the GIL; the attacker chooses the path."""
    import time

    from otel_slowstack.routes import RouteRule

    rule = RouteRule.of("/*a*a*a*a*b", 1)
    path = "/" + "a" * 100_000
    started = time.process_time()
    assert not rule.matches(path)
    assert rule.matches(path + "b")
    assert time.process_time() - started < 1.0  # linear: milliseconds, where backtracking never ends
