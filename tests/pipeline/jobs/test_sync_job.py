"""run_sync as a library call: fragments to an async callback, same frames as a file."""

import asyncio

from lipstream.config import SyncConfig
from lipstream.pipeline.jobs.sync import run_sync
from media import SAMPLE_AUDIO, SAMPLE_VIDEO, audio_samples, video_frames


def test_fragments_arrive_progressively_and_decode_like_the_file(tmp_path):
    fragments = []
    progress_when_fragment = []
    events = []

    async def on_fragment(data: bytes) -> None:
        fragments.append(data)
        progress_when_fragment.append(events[-1].frames if events else 0)

    config = SyncConfig(engine="passthrough")
    result = asyncio.run(run_sync(SAMPLE_VIDEO, SAMPLE_AUDIO, None, config, on_fragment=on_fragment, on_progress=events.append))
    stream = b"".join(fragments)
    assert result.output is None and result.frames == 100
    assert len(fragments) >= 3, "fragments must arrive while the job runs, not all at the end"
    assert progress_when_fragment[0] < 100
    asyncio.run(run_sync(SAMPLE_VIDEO, SAMPLE_AUDIO, tmp_path / "file.mp4", config))
    streamed, filed = video_frames(stream), video_frames(tmp_path / "file.mp4")
    assert [t for t, _ in streamed] == [t for t, _ in filed]
    assert all((a == b).all() for (_, a), (_, b) in zip(streamed, filed))
    assert abs(audio_samples(stream)[0] - audio_samples(tmp_path / "file.mp4")[0]) <= 1024
