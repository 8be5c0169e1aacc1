"""A live session: frames of a prepared face speaking the audio pushed to it, paced in real time.

    session = LiveSession(prepare_face("face.mp4"))
    async for frame in session:        # 25 frames a second, forever (idle between utterances)
        show(frame.picture, frame.audio)
    ...
    session.push_audio(pcm)            # from anywhere on the loop: 16 kHz mono s16le bytes or float32

The stream never stops: between utterances the face idles on its loop with
the mouth closed (the same drawing path with silence, so nothing jumps when
speech starts). Each frame is drawn `ahead` seconds before it is due on one
thread owned by the session (the engine's stage keeps state from frame to
frame); a frame that could not be drawn in time goes out as the plain loop
frame and is counted as dropped, so the stream keeps its rate. Frames are
pulled: a consumer that stops pulling falls behind the clock, and the
frames it missed are skipped (counted) rather than buffered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import AsyncIterator, Callable

import numpy as np

from lipstream.config import SyncConfig
from lipstream.errors import InputError
from lipstream.stream.frames import AudioSpan, Frame, Window
from lipstream.stream.sink import patched_picture

from ..engines.exemplar.bank import MouthBank
from ..engines.exemplar.stage import ExemplarConfig, ExemplarMouths
from ..engines.shared.articulation import ArticulationConfig, audio_reach
from ..engines.shared.rearticulate import WarpLips
from ..engines.wav2lip.config import Wav2LipConfig
from ..executors import device_executor
from ..stage import Stage
from .face import LiveFace
from .timeline import SpeechTimeline

log = logging.getLogger(__name__)

__all__ = ["LIVE_ENGINES", "LiveAvatar", "LiveConfig", "LiveFrame", "LiveSession", "LiveStats", "RATE", "live_stage", "mouth_bank"]

RATE = 16000  # the audio a session takes and gives back: mono, 16 kHz
LIVE_ENGINES = ("exemplar", "warp", "wav2lip")  # exemplar and warp draw a frame in milliseconds on a CPU; wav2lip wants a GPU
JITTER = 0.034  # seconds of the default delay left for the sender's jitter


def audio_ahead(engine: str) -> float:
    """Seconds of audio after a frame's time that `engine` reads to draw it."""
    if engine == "wav2lip":
        from ..engines.shared.mel import mel_reach

        return mel_reach()
    return audio_reach(ArticulationConfig(), RATE)


@dataclass(frozen=True)
class LiveConfig:
    engine: str = "exemplar"
    delay: float | None = None  # speech after a pause starts this long after it arrives (None: what the engine needs + JITTER)
    ahead: float = 0.04  # a frame is drawn this long before it is due
    max_queued: float = 30.0  # seconds of speech waiting to play before a push is refused
    catch_up: float = 0.2  # a frame this late goes out undrawn (dropped) so the stream regains its clock

    def __post_init__(self) -> None:
        if self.engine not in LIVE_ENGINES:
            raise InputError(f"live mode runs the {', '.join(LIVE_ENGINES)} engines, not {self.engine!r}")
        least = self.ahead + audio_ahead(self.engine)
        if self.delay is not None and self.delay < least:
            raise InputError(f"live delay {self.delay:g} s is shorter than the audio a {self.engine} frame reads ahead plus drawing time ({least:.3f} s)")

    @property
    def start_delay(self) -> float:
        """The jitter buffer in use: `delay`, or the least the engine needs plus room for jitter (0.16 s for exemplar/warp)."""
        if self.delay is not None:
            return self.delay
        return round(self.ahead + audio_ahead(self.engine) + JITTER, 3)


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One output frame: packed I420 pixels (size*3/2, size), its audio (int16, 16 kHz), its time."""

    tick: int
    time: Fraction
    picture: np.ndarray
    audio: np.ndarray
    speech: bool  # the frame's audio holds speech
    drawn: bool  # the engine drew the mouth (False: the plain loop frame)

    def rgb(self) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.picture, cv2.COLOR_YUV2RGB_I420)


@dataclass
class LiveStats:
    """What a session measured; `latencies` are seconds from a push to the first frame that plays it."""

    frames: int = 0
    dropped: int = 0  # drawn too late: sent undrawn
    skipped: int = 0  # never sent: the consumer did not pull in time
    draw_seconds: float = 0.0
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=4096))
    first_latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=256))

    def as_dict(self) -> dict[str, float | int]:
        def p95(values: collections.deque) -> float:
            return round(float(np.percentile(values, 95)), 4) if values else 0.0

        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "draw_ms": round(1000 * self.draw_seconds / max(self.frames, 1), 2),
            "latency_p95": p95(self.latencies),
            "first_frame_latency": round(max(self.first_latencies), 4) if self.first_latencies else 0.0,
        }


def mouth_bank(face: LiveFace) -> MouthBank:
    """The exemplar bank of `face`: every mouth of its loop offered once (sessions share it; it is only read)."""
    learner = ExemplarMouths(SyncConfig(engine="exemplar"), replace(ExemplarConfig(), learn_every=0))
    step = Fraction(1, face.options.fps)
    for k in range(len(face.frames)):
        learner.learn(face.frame(k, step))
    log.info("live exemplar bank: %d mouths from %d frames", len(learner.bank), len(face.frames))
    return learner.bank


def live_stage(face: LiveFace, engine: str, shared: MouthBank | Stage | None = None) -> Stage:
    """A fresh mouth stage of `engine` for one session of `face` (its target was found when it was prepared).

    `shared` is what `LiveAvatar` built once for all sessions: the exemplar
    bank, or the wav2lip stage itself (it keeps no state between frames).
    """
    job = SyncConfig(engine=engine)
    if engine == "warp":
        return WarpLips(job)
    if engine == "wav2lip":
        assert shared is not None, "the wav2lip stage is built by LiveAvatar (it needs the weights)"
        return shared  # type: ignore[return-value]
    stage = ExemplarMouths(job, replace(ExemplarConfig(), learn_every=0))
    stage.bank = shared if isinstance(shared, MouthBank) else mouth_bank(face)
    return stage


def wav2lip_stage(device: str, weights: tuple[Path, ...]) -> Stage:
    """The Wav2Lip stage on `device`, from the user's checkpoint (the registry says where to get it when missing)."""
    from ..engines import ENGINES, resolve
    from ..engines.wav2lip.stage import load_stage

    return load_stage(resolve(ENGINES["wav2lip"], weights), device)


class LiveAvatar:
    """A prepared face with what its sessions share (the exemplar bank, or the loaded network): one per face, many sessions."""

    def __init__(self, face: LiveFace, config: LiveConfig = LiveConfig(), *, device: str = "cpu", weights: tuple[Path, ...] = ()) -> None:
        self.face = face
        self.config = config
        self.shared: MouthBank | Stage | None = None
        if config.engine == "exemplar":
            self.shared = mouth_bank(face)
        elif config.engine == "wav2lip":
            self.shared = wav2lip_stage(device, tuple(weights))

    def session(self, *, pace: bool = True, clock: Callable[[], float] = time.monotonic) -> LiveSession:
        return LiveSession(self.face, self.config, pace=pace, clock=clock, stage=live_stage(self.face, self.config.engine, self.shared))


class LiveSession:
    """See the module docstring. One consumer iterates; `push_audio` may be called at any time from the loop."""

    def __init__(self, face: LiveFace, config: LiveConfig = LiveConfig(), *, pace: bool = True,
                 clock: Callable[[], float] = time.monotonic, stage: Stage | None = None) -> None:
        """`pace=False` draws frames as fast as they are pulled and places speech on the frames' clock
        (tests, offline rendering); `stage` reuses a stage built by `live_stage` for this face."""
        self.face = face
        self.config = config
        self.pace = pace
        self.clock = clock
        self.fps = face.options.fps
        self.step = Fraction(1, self.fps)
        self.per_frame = RATE // self.fps if RATE % self.fps == 0 else None
        self.stats = LiveStats()
        self._stage = stage if stage is not None else live_stage(face, config.engine)
        self._context = Wav2LipConfig().reach if config.engine == "wav2lip" else 0
        self._timeline = SpeechTimeline(RATE, config.start_delay, config.max_queued)
        # speech queued less than this ahead of the clock is too late for the next frame to draw: start afresh
        self._ready = int((config.ahead + audio_ahead(config.engine)) * RATE) + 1 if pace else 0
        self._lock = threading.Lock()  # the timeline: pushes on the loop, reads on the drawing thread
        self._pending: collections.deque[tuple[float, int, bool]] = collections.deque()  # (pushed at, start, after a pause)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lipstream-live")
        self._started: float | None = None
        self._tick = 0
        self._closed = False

    def position(self) -> int:
        """The stream's current sample position: the wall clock since the first frame (paced), else the next frame's."""
        if self.pace and self._started is not None:
            return int((self.clock() - self._started) * RATE)
        return self._sample(self._tick)

    def push_audio(self, pcm: bytes | np.ndarray) -> None:
        """Queue speech: 16 kHz mono, signed 16-bit little-endian bytes or float32 samples in [-1, 1]."""
        if self._closed:
            raise InputError("this live session is closed")
        if isinstance(pcm, (bytes, bytearray, memoryview)):
            if len(pcm) % 2:
                raise InputError(f"an audio chunk of {len(pcm)} bytes is not whole 16-bit samples (send s16le, 16 kHz mono)")
            samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        else:
            samples = np.asarray(pcm, np.float32).reshape(-1)
        if not len(samples):
            return
        now = self.position()
        with self._lock:
            ready = self._ready
            pause = self._timeline.end <= now + ready
            placed = self._timeline.push(samples, now, ready)
        self._pending.append((self.clock(), placed.start, pause))

    def interrupt(self) -> None:
        """Drop the speech not yet played (the user barged in): the face closes its mouth from the next frames."""
        with self._lock:
            self._timeline.clear(self._sample(self._tick + 1))
        self._pending.clear()

    def close(self) -> None:
        """End the stream: the iteration stops after the frame being drawn."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[LiveFrame]:
        return self.frames()

    async def frames(self) -> AsyncIterator[LiveFrame]:
        """The frames, in order, one per tick, until `close`."""
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = self.clock()
        while not self._closed:
            if self.pace:
                due = self._started + self._tick / self.fps
                behind = self.clock() - due
                if behind > self.config.catch_up + 1 / self.fps:  # the consumer did not pull: skip to now
                    missed = int(behind * self.fps)
                    self.stats.skipped += missed
                    self._tick += missed
                    due = self._started + self._tick / self.fps
                wait = due - self.config.ahead - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                late = self.clock() > due + self.config.catch_up
            else:
                due, late = 0.0, False
            try:
                frame = await loop.run_in_executor(self._executor, self._draw, self._tick, not late)
            except RuntimeError:  # closed while drawing
                return
            if self.pace:
                wait = due - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._delivered(frame)
            self._tick += 1
            yield frame

    def _sample(self, tick: int) -> int:
        return self.per_frame * tick if self.per_frame else int(tick * RATE / self.fps)

    def _draw(self, tick: int, draw: bool) -> LiveFrame:
        start = time.perf_counter()
        first, end = self._sample(tick), self._sample(tick + 1)
        margin = RATE // 2
        with self._lock:
            span = self._timeline.span(first - margin, end + margin)
            speech = self._timeline.speaking(first, end)
            self._timeline.forget(first - margin)
        frame = self.face.frame(tick, self.step)
        drawn = draw and frame.face is not None
        picture = self.face.frames[frame.source_index]  # the loop frame as prepared, unless the engine edits it
        if drawn:
            out = self._run(self._window(tick, frame, span)).owned[0]
            if out.patch is not None and out.decoded is not None:
                picture = patched_picture(out.decoded, out.patch).to_ndarray()
        elif not draw:
            self.stats.dropped += 1
        audio = span.at(Fraction(first, RATE), (end - first) / RATE)
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)  # s16le in, the same samples out
        self.stats.draw_seconds += time.perf_counter() - start
        return LiveFrame(tick, tick * self.step, picture, pcm, speech, drawn)

    def _window(self, tick: int, frame: Frame, span: AudioSpan) -> Window:
        """The frame to draw, with the loop frames around it that the stage reads (wav2lip smooths its face box)."""
        if not self._context:
            return Window(tick, (frame,), 0, 1, span)
        before = [self.face.frame(t, self.step) for t in range(max(tick - self._context, 0), tick)]
        after = [self.face.frame(t, self.step) for t in range(tick + 1, tick + 1 + self._context)]
        return Window(tick, (*before, frame, *after), len(before), len(before) + 1, span)

    def _run(self, window: Window) -> Window:
        """The stage on the window: a model stage on its device's one executor, shared with every session and job."""
        if self._stage.device is None:
            return self._stage(window)
        return device_executor(self._stage.device).submit(self._stage, window).result()

    def _delivered(self, frame: LiveFrame) -> None:
        """Count the frame; a pushed chunk whose first sample this frame plays has its latency measured."""
        self.stats.frames += 1
        end = self._sample(frame.tick + 1)
        now = self.clock()
        while self._pending and self._pending[0][1] < end:
            pushed, _, pause = self._pending.popleft()
            self.stats.latencies.append(now - pushed)
            if pause:
                self.stats.first_latencies.append(now - pushed)
