"""The runner alone: ordering, drain, errors, cancellation and bounded queues."""

import asyncio
import time
import threading
from fractions import Fraction

import pytest

from lipstream.errors import PipelineError
from lipstream.pipeline.runner import Runner
from lipstream.stream.frames import Frame, Window


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


def test_queues_are_bounded():
    gate = threading.Event()
    produced = []

    async def go():
        task = asyncio.create_task(Runner([Tag("slow", block=gate)], queue_size=2).run(make_windows(100, produced), lambda w: b""))
        await asyncio.sleep(0.5)
        ahead = len(produced)
        gate.set()
        await task
        return ahead

    ahead = asyncio.run(go())
    # one in the stage, two queued, one waiting in the producer's put, one being decoded
    assert ahead <= 5


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
