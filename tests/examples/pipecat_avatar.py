"""Example: a lipstream face as the video of a pipecat voice agent.

Put `LipstreamAvatar` after the TTS service and before the output transport:

    face = prepare_face("speaker.mp4")                  # once; cached on disk
    avatar = LipstreamAvatar(LiveAvatar(face))
    pipeline = Pipeline([transport.input(), stt, llm, tts, avatar, transport.output()])

with the transport's video output on (`video_out_enabled=True`,
`video_out_width`/`height` = the face's size, `video_out_framerate=25`). The
processor takes the TTS audio, and sends downstream, 25 times a second,
one `OutputImageRawFrame` with the speaking (or idling) face and the
`OutputAudioRawFrame` of that frame's 40 ms of speech, so the transport
plays sound and picture in step. An interruption (the user barges in)
drops the speech not yet played. Needs `pip install pipecat-ai`; lipstream
itself does not depend on it.
"""

from __future__ import annotations

import asyncio

import av
import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from lipstream.pipeline.live import RATE, LiveAvatar, LiveSession


class LipstreamAvatar(FrameProcessor):
    """TTS audio in; the face's frames and the same audio, in step, out."""

    def __init__(self, avatar: LiveAvatar, **kwargs) -> None:
        super().__init__(**kwargs)
        self.avatar = avatar
        self.session: LiveSession | None = None
        self._frames: asyncio.Task | None = None
        self._resampler: av.AudioResampler | None = None
        self._rate = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self.session = self.avatar.session()
            self._frames = self.create_task(self._send_frames())
        elif isinstance(frame, TTSAudioRawFrame):
            if self.session is not None:
                self.session.push_audio(self._at_16k(frame))  # played back by this processor, in step with the face
        elif isinstance(frame, InterruptionFrame):
            if self.session is not None:
                self.session.interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _send_frames(self) -> None:
        assert self.session is not None
        async for live in self.session:
            rgb = live.rgb()
            await self.push_frame(OutputImageRawFrame(image=rgb.tobytes(), size=(rgb.shape[1], rgb.shape[0]), format="RGB"))
            await self.push_frame(OutputAudioRawFrame(audio=live.audio.tobytes(), sample_rate=RATE, num_channels=1))

    async def _stop(self) -> None:
        if self.session is not None:
            self.session.close()
        if self._frames is not None:
            await self.cancel_task(self._frames)
            self._frames = None

    def _at_16k(self, frame: TTSAudioRawFrame) -> np.ndarray:
        """The TTS audio as 16 kHz mono float32 (TTS services speak at 16-48 kHz)."""
        samples = np.frombuffer(frame.audio, np.int16).reshape(-1, frame.num_channels).mean(axis=1) / 32768.0
        if frame.sample_rate == RATE:
            return samples.astype(np.float32)
        if self._resampler is None or self._rate != frame.sample_rate:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            self._rate = frame.sample_rate
        chunk = av.AudioFrame.from_ndarray(samples.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
        chunk.sample_rate = frame.sample_rate
        return np.concatenate([f.to_ndarray().reshape(-1) for f in self._resampler.resample(chunk)] or [np.zeros(0, np.float32)])
