"""Hostile and malformed input to ``otel-slowstack report``: every case ends
in one line on standard error and exit code 1, never a traceback; readable
records next to unreadable ones are reported, the rest skipped and counted;
files, answers and requests are bounded in memory and time."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from otel_slowstack.cli import main

BIN = Path(sys.executable).parent
STACK = '  File "/srv/app/views.py", line 10, in slow_view\n  File "/usr/lib/python3.12/socket.py", line 720, in readinto'


def kv(key: str, value) -> dict:
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"doubleValue": value}}


def sample_event(**extra) -> dict:
    attributes = [kv("code.stacktrace", STACK), kv("slowstack.trigger", "threshold"), kv("slowstack.sample.index", 1),
                  kv("slowstack.elapsed_ms", 1500.0), kv("slowstack.cpu_ratio", 0.1)]
    attributes += [{"key": k, "value": v} for k, v in extra.items()]
    return {"name": "slowstack.sample", "timeUnixNano": "1700000001500000000", "attributes": attributes}


def line(span_fields: dict, events=None, route: str = "/orders") -> str:
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "GET " + route,
            "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000",
            "attributes": [kv("http.request.method", "GET"), kv("http.route", route)],
            "events": events if events is not None else [sample_event()]}
    span.update(span_fields)
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [kv("service.name", "shop")]},
                                          "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]})


def no_samples(**fields) -> str:
    """A span of the given wrong shape, and no sample to report: exit 1 whatever is read."""
    return line(fields, events=[])


DEEP = 100_000
GOOD = line({})

#: name -> file content (str or bytes). Each is unreadable or holds nothing to report.
CORPUS: dict = {
    "empty": "",
    "blank lines": "\n\n  \n",
    "null": "null\n",
    "true": "true\n",
    "a number": "42\n",
    "a string": '"resourceSpans"\n',
    "an empty array": "[]\n",
    "an empty object": "{}\n",
    "NaN": "NaN\n",
    "-Infinity": "-Infinity\n",
    "1e400": "1e400\n",
    "resourceSpans a number": '{"resourceSpans": 5}\n',
    "resourceSpans NaN": '{"resourceSpans": NaN}\n',
    "resourceSpans [1]": '{"resourceSpans": [1]}\n',
    "resource a string": '{"resourceSpans": [{"resource": "x", "scopeSpans": []}]}\n',
    "scopeSpans a number": '{"resourceSpans": [{"scopeSpans": 5}]}\n',
    "scopeSpans [5]": '{"resourceSpans": [{"scopeSpans": [5]}]}\n',
    "spans a number": '{"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}\n',
    "spans [1]": '{"resourceSpans": [{"scopeSpans": [{"spans": [1]}]}]}\n',
    "attributes an int": no_samples(attributes=5) + "\n",
    "attribute keys a list": no_samples(attributes=[{"key": ["a"], "value": {"stringValue": "x"}}]) + "\n",
    "attributes of lists": no_samples(attributes=[["http.route", "/x"]]) + "\n",
    "arrayValue a list": no_samples(attributes=[{"key": "a", "value": {"arrayValue": [1, 2]}}]) + "\n",
    "kvlistValue a list": no_samples(attributes=[{"key": "a", "value": {"kvlistValue": [{"key": "b"}]}}]) + "\n",
    "doubleValue 1e400": no_samples(attributes=[{"key": "a", "value": {"doubleValue": 1e400}}]).replace("Infinity", "1e400") + "\n",
    "times 1e400": no_samples(startTimeUnixNano=1e400, endTimeUnixNano=-1e400).replace("-Infinity", "-1e400").replace("Infinity", "1e400") + "\n",
    "an integer of 5000 digits": no_samples().replace('"1700000000000000000"', "1" + "0" * 5000) + "\n",
    "kind and ids of wrong types": no_samples(kind={"x": 1}, traceId=7, spanId=["a"], name={"n": 1}) + "\n",
    "events a number": no_samples(events=5) + "\n",
    "events [1]": no_samples(events=[1, "x", None]) + "\n",
    "an event with attributes a string": no_samples(events=[{"name": 5, "attributes": "x"}]) + "\n",
    "nested 100000 deep (arrays)": "[" * DEEP + "]" * DEEP + "\n",
    "nested 100000 deep (objects)": '{"a":' * DEEP + "1" + "}" * DEEP + "\n",
    "nested deep over many lines": "{\n" + '"a": [' * DEEP + "\n" + "]" * DEEP + "\n}\n",
    "a truncated document": '{\n  "resourceSpans": [\n',
    "Jaeger data null": '{"data": null, "total": 0, "limit": 0, "offset": 0, "errors": null}\n',
    "Jaeger data [1]": '{"data": [1, "x"]}\n',
    "Jaeger processes an int": '{"data": [{"traceID": "a", "processes": 5, "spans": [{"spanID": "b", "processID": "p1", "tags": 5, "logs": "x"}]}]}\n',
    "Jaeger spans a number": '{"data": [{"spans": 5}]}\n',
    "Jaeger v3 result a number": '{"result": 5}\n',
    "Jaeger v3 resourceSpans a string": '{"result": {"resourceSpans": "x"}}\n',
    "invalid UTF-8": b'{"resourceSpans": [\xff\xfe]}\n',
    "NUL bytes": b"\x00" * 1000 + b"\n",
    "binary noise": bytes(range(256)) * 8,
    "a byte-order mark, then junk": b"\xef\xbb\xbf<html>not json</html>\n",
    "a corrupt gzip stream": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xde\xad\xbe\xef" * 64,
    "a truncated gzip stream": gzip.compress((GOOD + "\n").encode())[:40],
    "gzip of nothing readable": gzip.compress(b"not json\n" * 10),
}

#: name -> extra arguments; the source is a good file unless the arguments name one.
BAD_ARGUMENTS: dict = {
    "--timeout -1": ["--timeout", "-1"],
    "--timeout nan": ["--timeout", "nan"],
    "--timeout inf": ["--timeout", "inf"],
    "--limit 0": ["--limit", "0"],
    "--page-size -5": ["--page-size", "-5"],
    "--top 0": ["--top", "0"],
    "--since forever": ["--since", "forever"],
    "an unclosed IPv6 URL": ["http://[::1"],
    "a port out of range": ["http://127.0.0.1:99999"],
    "a URL without a host": ["http://"],
    "a header with a line break": ["http://127.0.0.1:9", "-H", "X-A: b\r\nX-Injected: 1"],
    "a header without a colon": ["http://127.0.0.1:9", "-H", "Bearer abc def"],
}


def assert_one_line_error(code: int, out: str, err: str) -> None:
    assert code == 1, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otel-slowstack report: error: "), err
    assert "a bug in otel-slowstack" not in err, err  # a named problem, not the safety net
    assert out == ""


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_file_is_one_line_and_exit_1(name: str, tmp_path: Path, capsys) -> None:
    content = CORPUS[name]
    compressed = isinstance(content, bytes) and content.startswith(b"\x1f\x8b")
    path = tmp_path / ("input.jsonl.gz" if compressed else "input.jsonl")
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    for fmt in ("text", "html"):
        code = main(["report", str(path), "-f", fmt])
        captured = capsys.readouterr()
        assert_one_line_error(code, captured.out, captured.err)


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_arguments_are_one_line_and_exit_1(name: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(GOOD + "\n")
    arguments = BAD_ARGUMENTS[name]
    source = [] if arguments[0].startswith("http") else [str(path)]
    code = main(["report", *source, *arguments, "--timeout", "5"] if "--timeout" not in arguments else ["report", *source, *arguments])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.out, captured.err)


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) + len(BAD_ARGUMENTS) >= 40


def test_unreadable_records_are_skipped_and_counted_once(tmp_path: Path) -> None:
    """Good lines around bad ones: the report, and one note at the end."""
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([CORPUS["nested 100000 deep (arrays)"].strip(), GOOD, '{"resourceSpans": [1, 2]}',
                               CORPUS["1e400"].strip(), line({}, route="/cart")]) + "\n")
    result = subprocess.run([str(BIN / "otel-slowstack"), "report", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "GET /orders" in result.stdout and "GET /cart" in result.stdout
    notes = [text for text in result.stdout.splitlines() if "skipped" in text]
    assert notes == ["note: 4 records skipped: line 1 is not JSON (nested too deeply) and 3 more"], result.stdout


def test_hostile_text_in_readable_spans_is_shown_not_obeyed(tmp_path: Path) -> None:
    """An attacker's URL path becomes the route: its escape sequences are
    printed visibly; a lone surrogate, NaN CPU ratios and an int where text
    belongs never break any format."""
    route = "/x\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e\ud800"
    hostile = line(
        {"attributes": [kv("http.request.method", "GET"), kv("url.path", route)]},
        events=[sample_event(**{"slowstack.in_flight": {"intValue": "5"}, "slowstack.cpu_ratio": {"doubleValue": "NaN"},
                                "slowstack.elapsed_ms": {"doubleValue": "Infinity"}})],
        route=route,
    )
    path = tmp_path / "hostile.jsonl"
    path.write_text(hostile + "\n", encoding="utf-8", errors="surrogatepass")
    for fmt in ("text", "folded", "speedscope", "html"):
        result = subprocess.run([str(BIN / "otel-slowstack"), "report", str(path), "-f", fmt], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        out = result.stdout.decode("utf-8")
        assert "Traceback" not in result.stderr.decode()
        assert "nan%" not in out.lower() and "inf" not in out.lower().replace("info", "")
        if fmt in ("text", "folded"):
            for control in ("\x1b", "\x07", "\x9b", "\u202e"):
                assert control not in out
            assert "GET /x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202e\\ud800" in out.replace(":", ";") or \
                "GET /x\\x1b]0:pwned\\x07\\x1b[2J\\x9b31m\\u202e\\ud800" in out


# -- bounded memory and time -------------------------------------------------


def run_measured(args: list, timeout: float = 120) -> tuple:
    """Run the command; (exit code, stderr, peak RSS in MiB of that one process, seconds)."""
    # Through a small launcher: a child's peak RSS counts its parent's at the
    # fork (Linux keeps the high-water mark across exec), and this test
    # process may be large by now; the launcher's own children start small.
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(timeout), str(BIN / "otel-slowstack"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = process.communicate(timeout=timeout + 60)
    code, rss_kib = (int(x) for x in out.decode().split())
    return code, err.decode("utf-8", "replace"), rss_kib / 1024, time.monotonic() - started


_LAUNCHER = """
import resource, subprocess, sys
try:
    code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, timeout=float(sys.argv[1])).returncode
except subprocess.TimeoutExpired:
    code = -9
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def gzip_bomb(path: Path, inflated: int) -> None:
    """``inflated`` bytes of one JSON line's worth of spaces, a few MB compressed."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (16 * 1024 * 1024)
    with open(path, "wb") as out:
        out.write(packer.compress(b'{"resourceSpans": ['))
        for _ in range(inflated // len(block)):
            out.write(packer.compress(block))
        out.write(packer.compress(b"]}\n"))
        out.write(packer.flush())


def test_a_gzip_bomb_and_dev_zero_stay_bounded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    gzip_bomb(bomb, 1024 * 1024 * 1024)
    assert bomb.stat().st_size < 5 * 1024 * 1024
    for source in (str(bomb), "/dev/zero"):
        code, err, rss_mib, seconds = run_measured(["report", source])
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert rss_mib < 600, (source, rss_mib)
        assert seconds < 100, (source, seconds)


class _Hostile(BaseHTTPRequestHandler):
    """A 'backend' that trickles a byte every 0.5 s, or answers without end, or redirects elsewhere."""

    mode = "trickle"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if self.mode == "endless":
                self.send_header("Content-Length", str(3 * 1024 ** 3))
                self.end_headers()
                block = b'{"data": [' + b" " * (1024 * 1024 - 10)
                self.wfile.write(block)
                while True:
                    self.wfile.write(b" " * (1024 * 1024))
            self.end_headers()
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def hostile_server():
    servers = []

    def start(mode: str) -> str:
        handler = type("Handler", (_Hostile,), {"mode": mode})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_trickling_backend_is_bounded_by_timeout(hostile_server) -> None:
    url = hostile_server("trickle")
    code, err, _rss, seconds = run_measured(["report", url, "--backend", "jaeger", "--service", "shop", "--timeout", "2"])
    assert code == 1 and "did not answer within 2 s" in err and len(err.strip().splitlines()) == 1, err
    assert seconds < 30


def test_an_endless_answer_is_bounded_in_memory(hostile_server) -> None:
    url = hostile_server("endless")
    code, err, rss_mib, _seconds = run_measured(["report", url, "--backend", "jaeger", "--service", "shop", "--timeout", "60"])
    assert code == 1 and "answered more than 64 MiB" in err and len(err.strip().splitlines()) == 1, err
    assert rss_mib < 600
