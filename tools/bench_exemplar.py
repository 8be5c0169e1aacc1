"""Acceptance report of the exemplar engine against the input and the warp engine (not part of the test suite).

    python tools/bench_exemplar.py [--media ../shared/media] [--out bench_exemplar] [--demos demo1 demo2] [--repeat 1]

For each demo, the installed CLI runs passthrough, warp and exemplar (separate
processes, wall time and peak RSS of each), then the outputs are decoded and
measured with the independent instruments of `lipstream.pipeline.metrics`:
  * lip sync: the re-detected mouth opening against the new audio's envelope
    (r at the best lead) and the silence/speech opening ratio;
  * realism proxies against the INPUT's own frames: mouth sharpness, the
    share of teeth-like pixels inside open mouths, inner-mouth luminance mean
    and spread, frame-to-frame flicker of the mouth; and, since the new audio
    opens the mouth otherwise than the input did, the input's teeth share and
    inner mean re-weighted to each output's openings (same bins);
  * seams: gradient along the edited region's border over the face interior;
  * a contact sheet of mouth crops, input | warp | exemplar, 8 frames
    (`<out>/exemplar_<demo>.png`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

from peak_rss import Measured  # noqa: E402  (a child's own peak RSS)


def run_cli(engine: str, video: Path, audio: Path, out: Path) -> tuple[float, float, dict]:
    """(wall s, peak RSS MB, the done event) of one `lipstream sync` as a user runs it."""
    start = time.perf_counter()
    job = Measured([sys.executable, "-m", "lipstream", "sync", video, audio, "-o", out, "--engine", engine, "--json"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = job.proc.stderr.read()
    if job.wait() != 0:
        raise SystemExit(f"{engine} failed: {err[-2000:]}")
    wall = time.perf_counter() - start
    done = json.loads(err.strip().splitlines()[-1])
    return wall, job.peak_mb, done


def decoded(path: Path, limit: int | None = None):  # type: ignore[no-untyped-def]
    from lipstream.pipeline.metrics.lipsync_metric import decode_rgb

    for k, (_, rgb) in enumerate(decode_rgb(path)):
        if limit is not None and k >= limit:
            return
        yield rgb


def measure(path: Path, limit: int):  # type: ignore[no-untyped-def]
    """(mouth openings per frame, the clip's realism summary, the open frames' (opening, teeth, inner mean,
    inner std)), in one streaming pass."""
    from lipstream.pipeline.metrics.mouth_realism import mouth_frames, summarise

    rows = list(mouth_frames(decoded(path, limit)))
    openings = np.array([np.nan if m is None else m.opening for m in rows])
    opened = np.array([(m.opening, m.teeth, m.inner_mean, m.inner_std) for m in rows if m is not None and not np.isnan(m.teeth)])
    return openings, summarise(rows), opened.reshape(-1, 4)


BINS = (0.15, 0.25, 0.35, 0.5, 10.0)  # openings (gap over width) of the open frames


def matched(reference: np.ndarray, output: np.ndarray) -> np.ndarray:
    """(teeth share, inner mean, inner std) of the reference's open frames re-weighted to the output's
    openings: what the input shows at the openings the new audio asks for (bins the reference lacks are
    skipped). The pooled means compare mouths opened differently: a speaker who mostly smiles a little
    shows more teeth than when he opens wide, whatever the engine does."""
    total, weight = np.zeros(3), 0.0
    for lo, hi in zip(BINS, BINS[1:]):
        ref = reference[(reference[:, 0] >= lo) & (reference[:, 0] < hi)]
        share = float(((output[:, 0] >= lo) & (output[:, 0] < hi)).mean()) if len(output) else 0.0
        if len(ref) and share:
            total, weight = total + share * ref[:, 1:].mean(axis=0), weight + share
    return total / weight if weight else np.full(3, np.nan)


def by_opening(name: str, opened: np.ndarray) -> None:
    """The open frames' teeth share and inner mean per opening bin."""
    for lo, hi in zip(BINS, BINS[1:]):
        rows = opened[(opened[:, 0] >= lo) & (opened[:, 0] < hi)]
        if len(rows):
            print(f"{'':<10}{name} openings {lo:.2f}-{min(hi, 1.0):.2f}: {len(rows):>4d} frames, teeth {rows[:, 1].mean():.3f}, "
                  f"inner mean {rows[:, 2].mean():.1f}")


def verdict(output: np.ndarray, reference: np.ndarray) -> str:
    """The issue's bounds on the inside of the mouth (teeth within 30 %, inner mean and std within 15 %),
    pooled over all open frames and re-weighted to the output's openings."""
    pooled, fair = output[:, 1:].mean(axis=0), matched(reference, output)
    parts = []
    for k, (label, bound) in enumerate((("teeth", 0.30), ("inner mean", 0.15), ("inner std", 0.15))):
        a, b = pooled[k] / reference[:, 1 + k].mean() - 1.0, pooled[k] / fair[k] - 1.0
        parts.append(f"{label} {a:+.0%} {'ok' if abs(a) <= bound else 'OUT'} / {b:+.0%} {'ok' if abs(b) <= bound else 'OUT'}")
    return "against the input, pooled / at the same openings: " + "; ".join(parts)


def contact_sheet(paths: list[Path], limit: int, out: Path, count: int = 8) -> None:
    from lipstream.pipeline.metrics.mouth_realism import zip_faces

    picks = np.linspace(5, limit - 5, count).astype(int).tolist()
    columns = [[rgb for k, rgb in enumerate(decoded(p, limit)) if k in picks] for p in paths]
    rows = []
    for n, (rgb, xy) in enumerate(zip_faces(columns[0])):
        if xy is None:
            continue
        lips = xy[[61, 291, 0, 17]]
        cx, cy = lips.mean(axis=0)
        w = (lips[:, 0].max() - lips[:, 0].min()) * 1.6
        x0, y0, x1, y1 = int(cx - w / 2), int(cy - 0.4 * w), int(cx + w / 2), int(cy + 0.4 * w)
        tiles = [cv2.resize(c[n][y0:y1, x0:x1], (192, int(192 * (y1 - y0) / (x1 - x0))), interpolation=cv2.INTER_CUBIC) for c in columns]
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles]))
    cv2.imwrite(str(out), np.vstack(rows)[:, :, ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=HERE.parent.parent / "shared" / "media")
    parser.add_argument("--out", type=Path, default=Path("bench_exemplar"))
    parser.add_argument("--demos", nargs="+", default=["demo1", "demo2"])
    args = parser.parse_args()

    from lipstream.pipeline.metrics.lipsync_metric import lipsync_score, read_audio, silence_ratio

    args.out.mkdir(parents=True, exist_ok=True)
    for demo in args.demos:
        video, audio = args.media / f"{demo}_video.mp4", args.media / f"{demo}_audio.wav"
        outputs, timing = {}, {}
        for engine in ("passthrough", "warp", "exemplar"):
            out = args.out / f"{demo}_{engine}.mp4"
            timing[engine] = run_cli(engine, video, audio, out)
            outputs[engine] = out
        samples = read_audio(audio)
        limit = int(timing["warp"][2]["frames"])
        ex = timing["exemplar"]
        print(f"\n{demo}: wall s passthrough {timing['passthrough'][0]:.1f}, warp {timing['warp'][0]:.1f}, exemplar {ex[0]:.1f} "
              f"({ex[0] / timing['passthrough'][0]:.2f}x passthrough); coverage {ex[2].get('exemplar_coverage')}, "
              f"{ex[2].get('exemplars')} exemplars")
        print(f"{'':<10}{'sync r':>8}{'lead ms':>8}{'silence':>8}{'sharp':>8}{'teeth':>8}{'in mean':>8}{'in std':>8}{'flicker':>8}{'open':>6}")
        base = reference = None
        for name, path in (("input", video), ("warp", outputs["warp"]), ("exemplar", outputs["exemplar"])):
            openings, real, opened = measure(path, limit)
            by_opening(name, opened)
            if reference is None:
                reference = opened
            else:
                teeth, mean, spread = matched(reference, opened)
                print(f"{'':<10}(the input at {name}'s openings: teeth {teeth:.3f}, inner mean {mean:.1f}, inner std {spread:.1f})")
                print(f"{'':<10}{verdict(opened, reference)}")
            times = np.arange(len(openings)) / 25.0
            score = lipsync_score(openings, times, samples, 16000)
            quiet = silence_ratio(openings, times, samples, 16000)
            base = base or real
            print(f"{name:<10}{score.r:>8.3f}{1000 * score.lead:>8.0f}{quiet:>8.2f}{real.sharpness / base.sharpness:>8.2f}"
                  f"{real.teeth:>8.3f}{real.inner_mean:>8.1f}{real.inner_std:>8.1f}{real.flicker / base.flicker:>8.2f}{real.open_frames:>6d}")
        contact_sheet([video, outputs["warp"], outputs["exemplar"]], limit, args.out / f"exemplar_{demo}.png")


if __name__ == "__main__":
    main()
