"""The live page in headless Chromium: the face plays, and speaks an audio file chosen on the page."""

import time

import pytest

from lipstream.pipeline.live import FaceOptions, LiveConfig
from lipstream.server import ServerConfig, ServerThread
from lipstream.server.limits import LiveSetup
from media import SAMPLE_AUDIO, SAMPLE_VIDEO
from test_server_browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, wait_until


@pytest.mark.slow
def test_the_live_page_shows_the_face_and_makes_it_speak(tmp_path, monkeypatch):
    sync_playwright = browser_or_skip()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    setup = LiveSetup(SAMPLE_VIDEO, FaceOptions(size=256, loop_seconds=2.0), LiveConfig(engine="warp"))
    with ServerThread(ServerConfig(port=0, work_dir=tmp_path, live=setup)) as running, sync_playwright() as playwright:
        fake_microphone = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_microphone)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(running.url + "live")
            wait_until(page, "document.body.dataset.state === 'playing'", 20)
            # the face keeps playing: the video element's clock advances and decoded frames add up
            first = page.evaluate("document.getElementById('face').currentTime")
            time.sleep(1.5)
            later = page.evaluate("document.getElementById('face').currentTime")
            assert later - first > 1.0
            decoded = page.evaluate("document.getElementById('face').getVideoPlaybackQuality().totalVideoFrames")
            assert decoded > 30
            assert page.evaluate("document.getElementById('face').videoWidth") == 256
            # speech chosen on the page reaches the server and plays: latencies get measured
            page.set_input_files("#speech", str(SAMPLE_AUDIO))
            wait_until(page, "/latency p95 [1-9]/.test(document.getElementById('numbers').textContent)", 20)
            assert page.evaluate("window.lipstream.audio") > 30
            # the microphone (Chromium's fake device: a beep) streams to the server too
            page.click("#microphone")
            wait_until(page, "(window.lipstream.microphone || 0) > 20", 10)
            page.click("#microphone")
            assert errors == []
        finally:
            browser.close()
