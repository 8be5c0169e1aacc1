"""`lipstream faces`: per-frame JSON on stdout and an overlay a person can check."""

import json

import numpy as np

from media import SAMPLE_VIDEO, run_cli, video_frames


def test_json_lines_per_frame_with_landmarks():
    result = run_cli(["faces", SAMPLE_VIDEO, "--points"])
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["frame"] for r in rows] == list(range(100))
    assert all(r["present"] for r in rows)
    first = rows[0]
    assert len(first["landmarks"]) == 468
    x0, y0, x1, y1 = first["crop"]
    bx0, by0, bx1, by1 = first["box"]
    assert x0 <= bx0 < bx1 <= x1 and y0 <= by0 < by1 <= y1
    assert "target present on 100/100" in result.stderr.decode()


def test_overlay_draws_on_the_video(tmp_path):
    out = tmp_path / "overlay.mp4"
    result = run_cli(["faces", SAMPLE_VIDEO, "--overlay", out, "--json"])
    assert result.returncode == 0, result.stderr.decode()
    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["present"] == 100
    drawn, plain = video_frames(out), video_frames(SAMPLE_VIDEO)
    assert len(drawn) == len(plain) == 100
    crop = json.loads(run_cli(["faces", SAMPLE_VIDEO]).stdout.decode().splitlines()[0])["crop"]
    x0, y0 = crop[:2]
    diff = np.abs(drawn[0][1].astype(int) - plain[0][1].astype(int)).sum(axis=2)
    assert diff[max(y0 - 1, 0) : y0 + 2, x0 + 20 : x0 + 60].max(axis=0).mean() > 60  # the crop's top edge is drawn
    assert diff[:, : max(x0 - 20, 1)].mean() < 8  # far from the face nothing is drawn


def test_missing_video_exits_2():
    result = run_cli(["faces", "/nonexistent/clip.mp4"])
    assert result.returncode == 2 and "video file not found" in result.stderr.decode()
