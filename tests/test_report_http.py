"""What the report sends where: ``--header`` values and URL credentials only
to the origin the user named, never along a redirect to another one; a
URL's password never printed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from support.report_backends import Fixtures, JaegerV3
from support.report_spans import shop_spans

BIN = Path(sys.executable).parent
SECRET_HEADERS = ["-H", "X-Api-Key: k3y", "-H", "X-Scope-OrgID: tenant-1", "-H", "Authorization: Bearer t0ken"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "otel-slowstack"), *args], capture_output=True, text=True, timeout=60)


class Redirecting(Fixtures):
    def __init__(self, target: str) -> None:
        super().__init__({})
        self.target = target

    def route(self, handler, path: str, query: dict) -> None:
        handler.send_response(302)
        handler.send_header("Location", self.target + path + ("?" + handler.path.split("?", 1)[1] if "?" in handler.path else ""))
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def test_headers_stay_with_the_origin_the_user_named() -> None:
    with JaegerV3(shop_spans()) as elsewhere, Redirecting(elsewhere.url) as named:
        result = cli("report", named.url, "--service", "shop", *SECRET_HEADERS, "-f", "folded")
        first = named.requests[0][2]
        followed = elsewhere.requests
    assert result.returncode == 0, result.stderr
    assert first["X-Api-Key"] == "k3y" and first["X-Scope-OrgID"] == "tenant-1" and first["Authorization"] == "Bearer t0ken"
    assert followed, "the redirect was not followed"
    for _path, _query, headers in followed:
        assert not {"X-Api-Key", "X-Scope-OrgID", "Authorization"} & set(headers), headers


class MovedJaeger(JaegerV3):
    """Jaeger behind ``/old``, moved to ``/``: a redirect within one origin."""

    def route(self, handler, path: str, query: dict) -> None:
        if path.startswith("/old/"):
            handler.send_response(301)
            handler.send_header("Location", handler.path[len("/old"):])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        super().route(handler, path, query)


def test_headers_follow_a_redirect_within_the_same_origin() -> None:
    with MovedJaeger(shop_spans()) as jaeger:
        result = cli("report", jaeger.url + "/old", "--service", "shop", *SECRET_HEADERS, "-f", "folded")
    assert result.returncode == 0, result.stderr
    moved = [h for path, _, h in jaeger.requests if not path.startswith("/old/")]
    assert moved and all(h.get("X-Api-Key") == "k3y" and h.get("X-Scope-OrgID") == "tenant-1" for h in moved)


def test_credentials_in_the_url_are_used_but_never_printed() -> None:
    services = json.dumps({"services": ["foo"]})
    with Fixtures({"/api/v3/services": (200, services)}) as jaeger:
        url = jaeger.url.replace("http://", "http://admin:s3cret@")
        result = cli("report", url, "--service", "shop")
        sent = jaeger.requests[0][2].get("Authorization", "")
    assert result.returncode == 1
    assert "s3cret" not in result.stderr + result.stdout
    assert f"Jaeger at {jaeger.url.replace('http://', 'http://admin:***@')} knows no service 'shop'" in result.stderr
    assert sent == "Basic " + base64.b64encode(b"admin:s3cret").decode()
    unreachable = cli("report", "http://admin:s3cret@127.0.0.1:9/", "--service", "shop", "--timeout", "5")
    assert unreachable.returncode == 1 and "s3cret" not in unreachable.stderr and "admin:***@" in unreachable.stderr
