"""The runner alone: ordering, drain, errors, cancellation and the bound on windows in flight."""

import asyncio
import time
import threading
from fractions import Fraction

import pytest

from lipstream.config import WindowConfig
from lipstream.errors import PipelineError
from lipstream.pipeline.runner import Runner, available_cores, default_in_flight
from lipstream.stream.frames import Frame, Window
from lipstream.stream.windows import frame_windows


def make_windows(count, produced):
    for i in range(count):
        produced.append(i)
        frame = Frame(i, i, Fraction(1, 25), i)
        yield Window(i, (frame,), 0, 1)


class Tag:
    device = None

    def __init__(self, name, fail_at=None, block=None):
        self.name = name
        self.fail_at = fail_at
        self.block = block
        self.seen = []

    def __call__(self, window):
        self.seen.append(window.index)
        if self.block is not None:
            self.block.wait(5)
        if window.index == self.fail_at:
            raise ValueError("boom")
        return window


def test_windows_pass_every_stage_in_order():
    a, b = Tag("a"), Tag("b")
    written, events = [], []
    produced = []
    count = asyncio.run(
        Runner([a, b]).run(make_windows(20, produced), lambda w: written.append(w.index) or b"", total_frames=20, on_progress=events.append)
    )
    assert count == 20 and written == list(range(20)) and a.seen == b.seen == list(range(20))
    assert events[-1].frames == 20 and events[-1].eta == 0 and [s.name for s in events[-1].stages] == ["a", "b"]


def test_stage_error_stops_everything_with_that_error():
    produced = []
    with pytest.raises(PipelineError, match="stage-b failed: ValueError"):
        asyncio.run(Runner([Tag("a"), Tag("b", fail_at=3)]).run(make_windows(10_000, produced), lambda w: b""))
    assert len(produced) < 30, "the producer must stop soon after the failure"


@pytest.mark.parametrize("in_flight", [None, 5])
def test_windows_admitted_are_bounded(in_flight):
    gate = threading.Event()
    produced = []

    async def go():
        task = asyncio.create_task(Runner([Tag("slow", block=gate)], in_flight=in_flight).run(make_windows(100, produced), lambda w: b""))
        await asyncio.sleep(0.5)
        ahead = len(produced)
        gate.set()
        await task
        return ahead

    ahead = asyncio.run(go())
    # one in the stage, the rest decoded and queued: no window is decoded beyond the budget
    # (the default for plain stages: one window ahead of the encoder's)
    assert ahead == (in_flight or 2)


def test_model_stages_with_cores_of_their_own_get_a_window_each_by_default():
    plain, on_cpu, on_gpu = Tag("plain"), Tag("cpu model"), Tag("gpu model")
    on_cpu.device, on_gpu.device = "cpu", "cuda:0"
    assert Runner([plain]).in_flight == 2
    # A small machine's CPU model stage shares the codec's cores: another window is only memory.
    assert default_in_flight([plain, on_cpu], cores=2) == 2
    assert default_in_flight([plain, on_cpu], cores=16) == 3
    assert default_in_flight([plain, on_cpu, on_gpu], cores=2) == 3
    assert Runner([plain, on_cpu, on_gpu]).in_flight == default_in_flight([plain, on_cpu, on_gpu], available_cores())


class Picture:
    """Stands for a decoded picture; counts how many are alive at once."""

    alive = peak = 0

    def __init__(self):
        Picture.alive += 1
        Picture.peak = max(Picture.peak, Picture.alive)

    def __del__(self):
        Picture.alive -= 1


class Restamp:
    """A stage that hands on new Frame objects over the same pictures, as the face stage and engines do."""

    device = None

    def __init__(self, name):
        self.name = name

    def __call__(self, window):
        return window.with_frames([f.with_face(None) for f in window.frames])


def pictures_alive_at_most(frames, config, in_flight):
    """Peak pictures alive over a run of `frames` whose writer is the bottleneck, so the budget fills."""
    Picture.alive = Picture.peak = 0

    def decode():
        for i in range(frames):
            time.sleep(0)  # let the other threads run, as a real decoder does
            yield Frame(i, i, Fraction(1, 25), i, decoded=Picture())

    def write(window):
        time.sleep(0.01)  # well above what decoding a window takes, even on a loaded machine
        return b""

    runner = Runner([Restamp("faces"), Restamp("engine")], in_flight=in_flight)
    written = asyncio.run(runner.run(frame_windows(decode(), None, config), write))
    assert written == frames and Picture.alive == 0
    return Picture.peak


@pytest.mark.parametrize("in_flight", [None, 4])
def test_decoded_pictures_alive_are_bounded_by_the_window_budget_not_the_length(in_flight):
    # The path from the window planner through two stages to the writer: the budget's
    # windows of new frames plus the overlap are alive, however long the clip (queues
    # per hop held up to 3 windows each: 136-168 pictures here). The slack, one window, is
    # a worker thread that lets go of its window a moment after handing it on (a whole
    # window's worth on a loaded machine).
    config = WindowConfig(size=24, overlap=8)
    stride = config.size - config.overlap
    bound = (in_flight or 2) * stride + config.overlap
    for frames in (200, 2000):
        peak = pictures_alive_at_most(frames, config, in_flight)
        assert bound - stride < peak <= bound + stride, (frames, peak, bound)


def test_cancel_aborts_at_once():
    produced = []

    async def go():
        task = asyncio.create_task(Runner([Tag("a")]).run(make_windows(10**9, produced), lambda w: b""))
        await asyncio.sleep(0.3)
        at_cancel = len(produced)
        cancelled = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)  # a runner that ignored the cancel would time out instead
        return at_cancel, time.perf_counter() - cancelled

    at_cancel, took = asyncio.run(go())
    # the run had started, stopped within a moment, and the producer pulled at most the window in hand
    assert at_cancel > 0 and took < 0.5, (at_cancel, took)
    assert len(produced) <= at_cancel + 1


def test_fragments_reach_the_async_callback_in_order():
    got = []

    async def on_fragment(data):
        got.append(data)

    asyncio.run(Runner([]).run(make_windows(5, []), lambda w: bytes([w.index]), on_fragment=on_fragment))
    assert got == [bytes([i]) for i in range(5)]
