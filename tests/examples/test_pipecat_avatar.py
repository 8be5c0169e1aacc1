"""The pipecat example as a pipecat pipeline runs it: TTS audio in, face frames and the same speech out, paced."""

import asyncio
import os

import numpy as np
import pytest

try:
    import pipecat  # noqa: F401
except ImportError:
    if os.environ.get("CI") == "true":
        pytest.fail("the pipecat example needs pipecat-ai; CI installs the test extra, which has it", pytrace=False)
    pytest.skip("the pipecat example needs pipecat-ai (pip install 'lipstream[test]')", allow_module_level=True)

from pipecat.frames.frames import OutputAudioRawFrame, OutputImageRawFrame, TTSAudioRawFrame  # noqa: E402
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402

from lipstream.pipeline.live import FaceOptions, LiveAvatar, LiveConfig, prepare_face  # noqa: E402
from lipstream.pipeline.metrics.lipsync_metric import read_audio  # noqa: E402
from media import SAMPLE_AUDIO, SAMPLE_VIDEO  # noqa: E402
from pipecat_avatar import LipstreamAvatar  # noqa: E402


@pytest.mark.slow
def test_a_pipecat_pipeline_gets_the_speaking_face_and_its_audio_in_step(tmp_path):
    face = prepare_face(SAMPLE_VIDEO, FaceOptions(size=128, loop_seconds=1.0), cache=tmp_path)
    speech = read_audio(SAMPLE_AUDIO, 24000)[:24000]  # one second of TTS at 24 kHz
    tts = TTSAudioRawFrame(audio=(np.clip(speech, -1, 1) * 32767).astype(np.int16).tobytes(), sample_rate=24000, num_channels=1)
    avatar = LipstreamAvatar(LiveAvatar(face, LiveConfig(engine="warp")))
    down, _ = asyncio.run(run_test(avatar, frames_to_send=[SleepFrame(0.2), tts, SleepFrame(2.0)]))
    images = [f for f in down if isinstance(f, OutputImageRawFrame)]
    sounds = [f for f in down if isinstance(f, OutputAudioRawFrame)]
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)  # the avatar plays the speech itself
    assert 45 <= len(images) <= 65 and len(sounds) == len(images)  # about 2.2 s at 25 fps
    assert all(f.size == (128, 128) and f.format == "RGB" and len(f.image) == 128 * 128 * 3 for f in images)
    assert all(f.sample_rate == 16000 and len(f.audio) == 2 * 640 for f in sounds)
    played = np.concatenate([np.frombuffer(f.audio, np.int16) for f in sounds]).astype(np.float32) / 32768
    voiced = np.flatnonzero(np.abs(played) > 1e-3)
    assert 0.9 < (voiced[-1] - voiced[0]) / 16000 <= 1.0  # the whole second of speech, once
    expected = read_audio(SAMPLE_AUDIO, 16000)[:16000]
    loud = float(np.sqrt(np.mean(expected**2)))
    assert float(np.sqrt(np.mean(played[voiced[0] : voiced[0] + 16000] ** 2))) == pytest.approx(loud, rel=0.1)
