"""`lipstream weights list|verify|fetch` as a user runs them; downloads come from a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lipstream.errors import WeightsError
from lipstream.models._hub import fetch
from lipstream.models._registry import CHECKPOINTS, Checkpoint, WeightFile


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes, int | None]] = {}  # path -> (status, body, declared length)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status, body, length = self.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    """http://127.0.0.1:<free port>; tests put files into `routes`."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A user with an empty cache and no $LIPSTREAM_WEIGHTS, reaching 127.0.0.1 without a proxy."""
    monkeypatch.delenv("LIPSTREAM_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return dict(os.environ)


def weights(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lipstream", "weights", *map(str, args)],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line: human text, or with --json a JSON "error" event carrying it."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    errors = [line for line in lines if line.startswith(("lipstream: error: ", '{"event":"error"'))]
    assert len(errors) == 1, result.stderr
    line = errors[0]
    return line if line.startswith("lipstream") else "lipstream: error: " + json.loads(line)["message"]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".part")]


# ------------------------------------------------------------------ list / verify


def test_list_shows_needs_and_found_files(tmp_path, env):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "lipsync_expert.pth").write_bytes(b"x" * 10)
    result = weights("list", "--weights", tmp_path / "w", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dirs"] == [str(tmp_path / "w"), str(tmp_path / "cache" / "lipstream")]
    assert data["engines"]["score"] == {"needs": [["syncnet_color"]], "missing": [], "ready": True}
    assert data["engines"]["wav2lip"]["needs"] == [["wav2lip_gan", "wav2lip"]]
    assert data["engines"]["wav2lip"]["ready"] is False and data["auto"] == "exemplar"
    (found,) = data["checkpoints"]["syncnet_color"]["files"]
    assert found["path"] == str(tmp_path / "w" / "lipsync_expert.pth") and found["bytes"] == 10
    assert data["checkpoints"]["gpen512"]["float16_on_cuda"] and not data["checkpoints"]["gfpgan_v1_4"]["float16_on_cuda"]
    human = weights("list", "--weights", tmp_path / "w", env=env)
    assert human.returncode == 0 and "score      needs syncnet_color: ready" in human.stdout
    assert "wav2lip    needs wav2lip_gan or wav2lip: missing wav2lip_gan or wav2lip" in human.stdout
    names = [line.split()[0] for line in human.stdout.splitlines() if line and not line[0].isspace()]
    assert names.count("enet") == 1, "each checkpoint is listed once, its files below it"
    assert "no implementation" not in human.stdout
    assert "GPEN-BFR-512 face restoration; float16 on CUDA" in human.stdout


def test_verify_reports_and_fails_on_a_bad_file(tmp_path, env):
    torch.save({"state_dict": {"nothing": torch.zeros(1)}}, tmp_path / "lipsync_expert.pth")
    result = weights("verify", "score", "wav2lip", "--weights", tmp_path, "--json", env=env)
    line = one_error_line(result)
    assert "syncnet_color failed verification" in line and "https://github.com/Rudrabha/Wav2Lip" in line
    assert "weights fetch" not in line  # it has no direct download: never advise a fetch that refuses
    results = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert set(results) == {"syncnet_color", "wav2lip"}
    assert results["syncnet_color"]["status"] == "failed" and "does not fit SyncNetColor" in results["syncnet_color"]["detail"]
    assert results["wav2lip"]["status"] == "missing"
    assert weights("verify", "wav2lip", "--weights", tmp_path, env=env).returncode == 0


def test_unknown_name(env):
    assert "unknown checkpoint or engine 'nope'" in one_error_line(weights("verify", "nope", env=env))


# ------------------------------------------------------------------ fetch


def test_fetch_downloads_with_progress_and_writes_atomically(tmp_path, env, server):
    base, routes = server
    body = np.random.default_rng(3).bytes(3 * (1 << 20) + 17)
    routes["/mirror/lipsync_expert.pth"] = (200, body, None)
    dest = tmp_path / "dest"
    result = weights("fetch", "syncnet_color", "--dest", dest, "--url", f"{base}/mirror/lipsync_expert.pth", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert (dest / "lipsync_expert.pth").read_bytes() == body
    assert no_temp_files(dest)
    events = [json.loads(line) for line in result.stderr.splitlines()]
    progress = [e for e in events if e["event"] == "download"]
    assert progress[0]["bytes"] == 0 and progress[-1] == {
        "event": "download", "file": "lipsync_expert.pth", "url": f"{base}/mirror/lipsync_expert.pth",
        "bytes": len(body), "total": len(body), "finished": True,
    }
    assert events[-1] == {"event": "done", "files": [str(dest / "lipsync_expert.pth")]}
    assert result.stdout == ""


def test_fetch_extracts_a_zip_member_into_the_official_layout(tmp_path, env, server):
    base, routes = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("BFM/01_MorphableModel.mat", b"other")
        zf.writestr("BFM/similarity_Lm3D_all.mat", b"landmarks")
    routes["/BFM.zip"] = (200, buffer.getvalue(), None)
    result = weights("fetch", "bfm_lm3d", "--url", f"{base}/BFM.zip", env=env)
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "cache" / "lipstream"
    assert (cache / "BFM" / "similarity_Lm3D_all.mat").read_bytes() == b"landmarks"
    assert sorted(p.name for p in cache.rglob("*")) == ["BFM", "similarity_Lm3D_all.mat"]


def test_fetch_errors_are_one_line_and_leave_nothing(tmp_path, env, server):
    base, _ = server
    line = one_error_line(weights("fetch", "lnet", "--dest", tmp_path, "--url", f"{base}/gone.pth", env=env))
    assert "could not download LNet.pth" in line and "HTTP 404" in line
    assert list(tmp_path.iterdir()) == []
    line = one_error_line(weights("fetch", "wav2lip", "--dest", tmp_path, env=env))
    assert "no direct download" in line and "github.com/Rudrabha/Wav2Lip" in line
    line = one_error_line(weights("fetch", "enet", "--url", f"{base}/x.pth", env=env))
    assert "ambiguous" in line and "ENet.pth, LNet.pth" in line


def _pinned(body: bytes, url: str, **fields: object) -> Checkpoint:
    declared = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), **fields}
    spec = WeightFile("pinned.bin", urls=(url,), **declared)  # type: ignore[arg-type]
    return Checkpoint("pinned", "test file", (spec,), "test", kind="data")


def test_fetch_checks_declared_hash_size_and_length(tmp_path, server):
    base, routes = server
    body = b"weights" * 1000
    routes["/pinned.bin"] = (200, body, None)
    routes["/short.bin"] = (200, body[:100], len(body))  # the server promises more than it sends
    (path,) = fetch(_pinned(body, f"{base}/pinned.bin"), tmp_path)
    assert path.read_bytes() == body
    mtime = path.stat().st_mtime_ns
    fetch(_pinned(body, f"{base}/gone.bin"), tmp_path)  # a matching file is kept, nothing downloaded
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(WeightsError, match="sha256 .* differs"):
        fetch(_pinned(body, f"{base}/pinned.bin", sha256="0" * 64), tmp_path / "a")
    with pytest.raises(WeightsError, match="bytes instead of"):
        fetch(_pinned(body, f"{base}/pinned.bin", size=len(body) + 1), tmp_path / "b")
    with pytest.raises(WeightsError, match="ended after|IncompleteRead"):
        fetch(_pinned(body, f"{base}/short.bin"), tmp_path / "c", timeout=5)
    for folder in ("a", "b", "c"):
        assert list((tmp_path / folder).iterdir()) == []
    mirrors = {"pinned.bin": [f"{base}/gone.bin", f"{base}/pinned.bin"]}  # the first mirror fails, the next one works
    (again,) = fetch(_pinned(body, f"{base}/gone.bin"), tmp_path / "d", urls=mirrors)
    assert again.read_bytes() == body


def test_every_downloadable_file_names_its_release():
    for entry in CHECKPOINTS.values():
        for spec in entry.files:
            for url in spec.urls:
                assert url.rsplit("/", 1)[-1] in (spec.filename, "BFM.zip"), url
