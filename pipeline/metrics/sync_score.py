"""`lipstream score`: how well a video's lips match its audio, by Wav2Lip's SyncNet_color expert.

The video and the audio are read once, in step, as SyncNet_color windows
(`lipstream.pipeline.metrics.syncnet_inputs`: 25 fps, lower-face crops, mel
windows); both are embedded in batches and the embeddings go into
`lipstream.pipeline.metrics.lse.OffsetSearch`, so memory stays flat whatever the
length: a few frames, a few seconds of audio, one batch and 2 x 31
embeddings at a time.

The numbers are SyncNet_color distances between unit embeddings, so they
are not on the scale of published LSE-C/LSE-D values (computed with the
original SyncNet); compare them with each other, not with papers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from lipstream.config import FaceConfig
from lipstream.errors import InputError
from lipstream.models._loading import load_model
from lipstream.models.face_types import FaceDetector
from lipstream.stream.audio import AudioInput
from lipstream.stream.inputs import open_container
from lipstream.stream.frames import Frame
from lipstream.stream.source import VideoSource

from ..engines.base import find
from ..faces.models import face_models
from ..faces.models import requirements as face_requirements
from .lse import OffsetScores, OffsetSearch
from .syncnet_inputs import GRID_RATE, WINDOW, LowerFaceTracker, audio_windows, lower_half, video_windows
from .syncnet_protocol import ProtocolConfig, Track, crop_face, detect_grid, link_tracks, track_crops

Protocol = Literal["lipstream", "syncnet"]

__all__ = ["SyncScore", "score_sync"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the job


@dataclass(frozen=True)
class SyncScore:
    """Result of `score_sync`; offsets are in frames at `GRID_RATE`."""

    scores: OffsetScores
    frames: int
    windows: int
    face_windows: int
    protocol: Protocol = "lipstream"
    tracks: int = 0  # S3FD face tracks (syncnet protocol)

    @property
    def offset(self) -> int:
        return self.scores.best_offset

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "offset_seconds": self.offset / GRID_RATE,
            "lse_c": self.scores.confidence,
            "lse_d": self.scores.min_distance,
            "fps": GRID_RATE,
            "frames": self.frames,
            "windows": self.windows,
            "face_windows": self.face_windows,
            "offsets": list(self.scores.offsets),
            "distances": list(self.scores.mean_distance),
            "pairs": list(self.scores.pairs),
            "model": "syncnet_color",
            "protocol": self.protocol,
            "tracks": self.tracks,
        }


class _Embedder:
    """SyncNet_color's two encoders, each returning unit (B, 512) embeddings as numpy."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype

    def _run(self, encoder: torch.nn.Module, items: list[np.ndarray]) -> np.ndarray:
        batch = torch.from_numpy(np.stack(items)).to(self.device, self.dtype)
        with torch.inference_mode():
            return F.normalize(encoder(batch).flatten(1).float(), p=2, dim=1).cpu().numpy()

    def video(self, items: list[np.ndarray]) -> np.ndarray:
        return self._run(self.model.face_encoder, items)

    def audio(self, items: list[np.ndarray]) -> np.ndarray:
        return self._run(self.model.audio_encoder, [m[None] for m in items])


class _Batch:
    """Windows waiting to be embedded together, then handed to the search in index order."""

    def __init__(self, embed: Callable[[list[np.ndarray]], np.ndarray], add: Callable[[int, np.ndarray | None], None], size: int) -> None:
        self.embed, self.add, self.size = embed, add, size
        self.items: list[tuple[int, np.ndarray | None]] = []

    def put(self, index: int, window: np.ndarray | None) -> None:
        self.items.append((index, window))
        if len(self.items) >= self.size:
            self.flush()

    def flush(self) -> None:
        real = [(i, x) for i, x in self.items if x is not None]
        vectors = dict(zip((i for i, _ in real), self.embed([x for _, x in real]))) if real else {}
        for i, _ in self.items:
            self.add(i, vectors.get(i))
        self.items.clear()


CHECKPOINTS = ("syncnet_color",)
"""What `lipstream score` loads (lipsync_expert.pth)."""


def _has_audio(path: str | Path) -> bool:
    with open_container(path, "video") as container:
        return bool(container.streams.audio)


class _TrackCrops:
    """Grid frame -> lower face cut from the protocol's smoothed track crop (None off every track)."""

    def __init__(self, tracks: list[Track], config: ProtocolConfig) -> None:
        self.config = config
        self.rows: dict[int, np.ndarray] = {}
        for track in tracks:
            for k, row in zip(track.frames, track_crops(track, config)):
                self.rows.setdefault(int(k), row)

    def __call__(self, k: int, frame: Frame) -> np.ndarray | None:
        row = self.rows.get(k)
        return None if row is None else lower_half(crop_face(frame.rgb(), *row, self.config))


def _protocol_tracks(video: str | Path, detector: FaceDetector, config: ProtocolConfig) -> list[Track]:
    """The first pass of the published protocol: the detector over the 25 fps grid, boxes linked into tracks."""
    with VideoSource(video) as source:
        tracks = link_tracks(list(detect_grid(source, detector, config)), config)
    if not tracks:
        raise InputError(
            f"no S3FD face track of {config.min_track} frames or more (faces over {config.min_face:g} px) in {video}; "
            "the syncnet protocol needs a visible speaker for at least 2 s"
        )
    return tracks


def score_sync(
    video: str | Path,
    audio: str | Path | None = None,
    *,
    weights_dirs: Iterable[str | Path] = (),
    device: str = "cpu",
    max_offset: int = 15,
    batch_size: int = 32,
    protocol: Protocol = "lipstream",
    face: FaceConfig = FaceConfig(),
    detector: FaceDetector | None = None,
) -> SyncScore:
    """Score the lip sync of `video` against `audio` (default: the video's own audio track).

    `weights_dirs` are searched for lipsync_expert.pth (and s3fd-619a316812.pth
    for the `syncnet` protocol) before $LIPSTREAM_WEIGHTS and the cache
    folder. `lipstream` follows the target as the pipeline does (`face`);
    `syncnet` cuts the published protocol's S3FD face tracks (`detector`
    replaces S3FD, e.g. to test the rest of the protocol).
    """
    search = OffsetSearch(max_offset)
    windows = faces = 0
    weights_dirs = tuple(weights_dirs)
    if audio is None and not _has_audio(video):
        raise InputError(f"{video} has no audio track; pass the speech to score against as AUDIO")
    needs = [(CHECKPOINTS[0],), *face_requirements(face)] if protocol == "lipstream" else [(CHECKPOINTS[0],)]
    if protocol == "syncnet" and detector is None:
        needs.append(("s3fd",))
    find(needs, weights_dirs, f"lipstream score --protocol {protocol}")  # every missing file in one line
    expert = load_model(CHECKPOINTS[0], weights_dirs=weights_dirs, device=device)
    tracks: list[Track] = []
    if protocol == "syncnet":
        if detector is None:
            from lipstream.models.s3fd import S3FDDetector

            detector = S3FDDetector(load_model("s3fd", weights_dirs=weights_dirs, device=device))
        tracks = _protocol_tracks(video, detector, ProtocolConfig())
        crops: Callable[[int, Frame], np.ndarray | None] = _TrackCrops(tracks, ProtocolConfig())
    else:
        crops = LowerFaceTracker(face, face_models(face, device, weights_dirs))
    with VideoSource(video) as source:
        sound = AudioInput(audio if audio is not None else video)
        try:
            embedder = _Embedder(expert)
            videos = _Batch(embedder.video, search.add_video, batch_size)
            audios = _Batch(embedder.audio, search.add_audio, batch_size)
            sounds = audio_windows(sound)
            audio_next, audio_ended = 0, False

            def audio_until(last: int) -> None:
                """Read audio windows up to index `last`: the audio keeps step with the video."""
                nonlocal audio_next, audio_ended
                while not audio_ended and audio_next <= last:
                    item = next(sounds, None)
                    if item is None:
                        audio_ended = True
                        audios.flush()  # pending audio must pair before video stops being kept
                        search.end_audio()
                        return
                    audios.put(*item)
                    audio_next = item[0] + 1

            for i, window in video_windows(source, crops):
                windows += 1
                faces += window is not None
                videos.put(i, window)
                audio_until(i)
            videos.flush()
            search.end_video()
            audio_until(windows - 1 + max_offset)  # the last windows pair with audio up to S frames later
            audios.flush()
        finally:
            sound.close()
    if windows == 0:
        raise InputError(f"{video} is shorter than {WINDOW} frames at {GRID_RATE} fps; nothing to score")
    if audio_next == 0:
        raise InputError(f"the audio of {audio or video} is shorter than one 0.2 s window; nothing to score")
    scores = search.result()
    if not scores.valid:
        if faces == 0:
            raise InputError(f"no face found in {WINDOW} consecutive frames of {video}; score needs a visible speaker")
        raise InputError(f"the audio does not overlap the video; check that the audio belongs to {video}")
    log.info("scored %d windows (%d with a face) against %d audio windows", windows, faces, audio_next)
    return SyncScore(scores, windows + WINDOW - 1, windows, faces, protocol, len(tracks))
