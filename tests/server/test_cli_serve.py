"""`lipstream serve` as a user runs it: it says where it listens, serves, and stops cleanly on a signal."""

import json
import select
import signal
import subprocess
import sys
import urllib.request


def test_serve_starts_answers_and_stops_on_sigint(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "lipstream", "serve", "--port", "0", "--json", "--root", str(tmp_path), "--max-jobs", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([process.stderr], [], [], 60)
        assert ready, "no listening line within 60 s"
        line = json.loads(process.stderr.readline())
        assert line["event"] == "listening" and line["websocket"].endswith("/ws")
        with urllib.request.urlopen(line["url"], timeout=10) as response:
            assert response.status == 200 and b"<video" in response.read()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert stdout == b"", "the server never writes to stdout"
    assert json.loads(stderr.decode().splitlines()[-1]) == {"event": "done", "stopped": True}


def test_serve_refuses_a_missing_root(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lipstream", "serve", "--root", str(tmp_path / "nope")], capture_output=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().startswith("lipstream: error: --root") and "Traceback" not in result.stderr.decode()
