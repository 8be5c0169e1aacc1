"""`lipstream score VIDEO [AUDIO]`: lip-sync offset and confidence by SyncNet_color."""

from __future__ import annotations

import argparse
import json
import sys

from lipstream.console import Console

from ._args import add_face_options, face_config, non_negative, positive


def add_parser(commands: argparse._SubParsersAction) -> None:
    score = commands.add_parser(
        "score",
        help="measure how well VIDEO's lips match AUDIO (SyncNet_color offset and confidence)",
        description=(
            "Find the audio offset that best matches the lips (-15..15 frames at 25 fps; positive: the sound "
            "comes late) and report LSE-C (confidence, higher is better) and LSE-D (distance, lower is better) "
            "computed with Wav2Lip's lipsync_expert.pth. Not on the scale of published LSE values."
        ),
    )
    score.add_argument("video", help="video file with a visible speaker")
    score.add_argument("audio", nargs="?", help="speech to score against (default: the video's own audio track)")
    score.add_argument("--weights", action="append", default=[], metavar="DIR", help="folder with lipsync_expert.pth (repeatable)")
    score.add_argument("--device", default="cpu", help="torch device, e.g. cuda:0 (default: %(default)s)")
    score.add_argument("--max-offset", type=non_negative, default=15, help="largest offset searched, in frames (default: %(default)s)")
    score.add_argument("--batch", type=positive, default=32, help="windows per forward pass (default: %(default)s)")
    score.add_argument(
        "--protocol",
        choices=("lipstream", "syncnet"),
        default="lipstream",
        help="lipstream: follow the target as `sync` does (default); syncnet: the published evaluation's S3FD "
        "face tracks and crops (needs s3fd-619a316812.pth; see the README)",
    )
    add_face_options(score)
    score.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    score.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from lipstream.pipeline.metrics.sync_score import score_sync

    result = score_sync(
        args.video,
        args.audio,
        weights_dirs=args.weights,
        device=args.device,
        max_offset=args.max_offset,
        batch_size=args.batch,
        protocol=args.protocol,
        face=face_config(args),
    )
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
    else:
        data = result.to_dict()
        lateness = "in sync" if data["offset"] == 0 else ("audio late" if data["offset"] > 0 else "audio early")
        sys.stdout.write(
            f"offset {data['offset']:+d} frames ({data['offset_seconds']:+.2f} s, {lateness})  "
            f"LSE-C {data['lse_c']:.3f}  LSE-D {data['lse_d']:.3f}  "
            f"({data['face_windows']}/{data['windows']} windows with a face)\n"
        )
    sys.stdout.flush()
    return 0
