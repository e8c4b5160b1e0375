"""``--format html`` in a real headless Chromium: the flame graph renders and
zooms with no console errors and no network access; a screenshot is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.report_chromium import Page, chromium_path, screenshot
from support.report_spans import shop_spans, write_otlp_file

BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if IN_CI:
            pytest.fail("chromium is not installed (CI=true: .ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    return path


@pytest.fixture
def page_file(tmp_path: Path) -> Path:
    traces = write_otlp_file(tmp_path / "traces.jsonl", shop_spans())
    out = tmp_path / "report.html"
    result = subprocess.run([str(BIN / "otel-slowstack"), "report", str(traces), "--format", "html", "-o", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return out


def test_page_is_self_contained(page_file: Path) -> None:
    text = page_file.read_text()
    assert "default-src 'none'" in text
    for reference in ("http://", "https://", "src=", "<link"):
        assert reference not in text, reference


def test_flame_graph_renders_and_zooms_in_chromium(chromium: str, page_file: Path, tmp_path: Path) -> None:
    url = page_file.as_uri()
    page = Page(chromium, tmp_path / "profile")
    try:
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        assert page.evaluate("document.body.getAttribute('data-flames')") == "4"
        first = page.evaluate(
            "Array.from(document.querySelectorAll('.flame')).map(f => Number(f.getAttribute('data-frames')))"
        )
        assert first[0] >= 6 and all(n >= 2 for n in first)  # root + every frame of GET /report's stack
        titles = page.evaluate("Array.from(document.querySelectorAll('#route-0 .flame .frame')).map(f => f.textContent)")
        assert titles[0] == "GET /report"
        assert "fetch_rates app/views.py:52" in titles and "readinto socket.py:720" in titles
        # A real mouse click on an application frame zooms into it.
        box = page.evaluate(
            "(() => { const f = Array.from(document.querySelectorAll('#route-1 .flame .frame'))"
            ".find(e => e.textContent.startsWith('prices ')); const r = f.getBoundingClientRect();"
            " f.scrollIntoView(); const s = f.getBoundingClientRect();"
            " return [s.left + 5, s.top + s.height / 2, r.width]; })()"
        )
        page.click(box[0], box[1])
        zoomed = page.evaluate(
            "(() => { const flame = document.querySelector('#route-1 .flame');"
            " const f = Array.from(flame.querySelectorAll('.frame')).filter(e => e.textContent.startsWith('prices ') && !e.classList.contains('ancestor'))[0];"
            " return [f.getBoundingClientRect().width, flame.getBoundingClientRect().width,"
            " flame.querySelectorAll('.ancestor').length, flame.nextElementSibling.textContent]; })()"
        )
        width, full, ancestors, details = zoomed
        assert width > full * 0.95 and ancestors == 3  # root, full_dispatch_request, dispatch_request
        assert details.startswith("prices \u2014 app/views.py:60 \u2014 on the stack in 4 of 4 samples")
        # Searching highlights a function in every route.
        matched = page.evaluate(
            "(() => { const s = document.getElementById('search'); s.value = 'readinto';"
            " s.dispatchEvent(new Event('input')); return [document.querySelectorAll('.frame.match').length,"
            " document.getElementById('matched').textContent]; })()"
        )
        assert matched[0] >= 2 and matched[1].startswith("highlighted: 100% / 0% / 100% / 0%")
        problems = page.problems()
        requests = page.requests()
    finally:
        page.close()
    assert problems == []
    assert requests == [url]  # the page itself and nothing else

    shot = tmp_path / "report.png"
    result = screenshot(chromium, url, shot, tmp_path / "profile-shot")
    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    print(f"screenshot: {shot}")


def test_the_page_script_reports_its_own_failures(chromium: str, page_file: Path, tmp_path: Path) -> None:
    """The console check can fail: a page whose data is broken shows an exception."""
    broken = tmp_path / "broken.html"
    text = page_file.read_text()
    start = text.index('<script type="application/json" id="slowstack-data">') + len('<script type="application/json" id="slowstack-data">')
    broken.write_text(text[:start] + "{not json" + text[text.index("</script>", start):])
    page = Page(chromium, tmp_path / "profile-broken")
    try:
        page.call("Page.navigate", url=broken.as_uri())
        page.wait_for("Page.loadEventFired")
        page.evaluate("1")
        problems = page.problems()
    finally:
        page.close()
    assert problems and problems[0][0] == "exception"
