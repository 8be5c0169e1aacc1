"""The page in headless Chromium: upload two files, and the preview plays while the job is still running.

Needs Debian's chromium at /usr/bin/chromium and Playwright for Python (its
driver ships in the wheel; `playwright install` is never needed). Skipped
when either is missing, except in CI (CI=true), where that is a failure.
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from lipstream.pipeline.engines import ENGINES, Engine
from lipstream.server import ServerConfig, ServerThread
from media import SAMPLE_AUDIO, SAMPLE_VIDEO
from ws_client import SlowPassthrough

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def browser_or_skip():
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("Playwright for Python (pip install playwright)")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        missing.append("chromium (apt-get install -y chromium)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must install them")
        pytest.skip(message)
    return sync_playwright


def wait_until(page, expression, timeout):
    """Poll `expression` with page.evaluate (wait_for_function would need the eval our page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}: status {page.text_content('#status')!r}")
        time.sleep(0.05)


@pytest.mark.slow
def test_preview_plays_before_the_job_ends(tmp_path, monkeypatch):
    sync_playwright = browser_or_skip()
    # About 33 windows of 3 new frames at 0.1 s each: the job takes ~3.5 s, a little faster than real time.
    monkeypatch.setitem(ENGINES, "slow", Engine("slow", "test: passthrough, slowly", lambda config, found: [SlowPassthrough(0.1)]))
    with ServerThread(ServerConfig(port=0, work_dir=tmp_path, idle_timeout=1.0)) as running, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(running.url)
            wait_until(page, "document.body.dataset.state === 'idle'", 10)
            # the server drops the idle page after a second; Start must open a new connection
            wait_until(page, "window.lipstream.closes === 1", 10)
            page.set_input_files("#video", str(SAMPLE_VIDEO))
            page.set_input_files("#audio", str(SAMPLE_AUDIO))
            # a fresh page starts on the engine that changes something: auto, not passthrough
            assert page.input_value("#engine") == "auto" and page.input_value("#quality") == "balanced"
            page.select_option("#engine", "slow")
            page.fill("#window", "4")
            page.fill("#overlap", "1")
            page.fill("#fragment", "0.3")
            started = time.monotonic()
            page.click("#start")
            wait_until(page, "document.body.dataset.state === 'running'", 10)
            wait_until(page, "['done', 'error'].includes(document.body.dataset.state)", 60)
            took = time.monotonic() - started
            status = page.text_content("#status")
            stats = page.evaluate("window.lipstream")
            assert page.evaluate("document.body.dataset.state") == "done", status
            assert took > 2, f"the job took {took:.1f} s: too fast to prove anything"
            assert stats["timeAtDone"] > 0.5, f"the preview had played {stats['timeAtDone']} s when the job ended ({stats})"
            # the preview then plays to the end of the stream, and the download link serves the file
            wait_until(page, "document.getElementById('preview').ended", 20)
            assert abs(page.evaluate("document.getElementById('preview').duration") - 4.0) < 0.1
            size = page.evaluate("fetch(document.getElementById('download').href).then(r => r.ok ? r.arrayBuffer() : null).then(b => b && b.byteLength)")
            assert size and size > 100_000
            assert errors == []
        finally:
            browser.close()
