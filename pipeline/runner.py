"""Run stages as concurrent tasks on bounded queues.

    producer ──q──> stage 1 ──q──> ... ──q──> stage n ──q──> sink
    (decode thread)  (worker thread or device executor)      (encode thread)

The runner owns every task, queue and thread of its job; stages stay plain
callables. Model stages run on their device's process-wide executor
(`executors.device_executor`), shared with concurrent jobs.
Each queue holds at most `queue_size` windows, so the frames alive at once
are bounded by (number of queues + number of busy tasks) x window size,
whatever the video's length. End of stream is an explicit item that drains
every stage in order; an error or a cancellation cancels every task at
once, aborts the sink (removing its temporary file) and re-raises the first
error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator, Sequence

from lipstream.errors import LipstreamError, PipelineError
from lipstream.stream.frames import Window

from .executors import device_executor
from .progress import ProgressCallback, ProgressMeter, StageStats
from .stage import Stage

log = logging.getLogger(__name__)

FragmentCallback = Callable[[bytes], Awaitable[None]]


class _End:
    """Sentinel: no more windows; drains the stage that receives it."""


END = _End()


@dataclass
class _Busy:
    seconds: float = 0.0


class Runner:
    """Connects a window producer, stages and a sink, and runs them to the end."""

    def __init__(self, stages: Sequence[Stage], *, queue_size: int = 2) -> None:
        self.stages = list(stages)
        self.queue_size = queue_size
        self._executors: dict[str, cf.ThreadPoolExecutor] = {}

    def _executor(self, key: str) -> cf.ThreadPoolExecutor:
        """This job's single-thread executor for a role (decode, encode, each plain stage)."""
        if key not in self._executors:
            self._executors[key] = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lipstream-{key}")
        return self._executors[key]

    async def run(
        self,
        windows: Iterator[Window],
        write: Callable[[Window], bytes],
        *,
        total_frames: int | None = None,
        on_progress: ProgressCallback | None = None,
        on_fragment: FragmentCallback | None = None,
        meter: ProgressMeter | None = None,
        counted: Callable[[Window], int] | None = None,
    ) -> int:
        """Pull windows, push them through the stages, hand owned frames to `write`.

        `windows` is a blocking iterator (it decodes); `write` is blocking too
        (it encodes). Returns the number of frames written. A job running
        several passes (segments) shares one `meter` across them and says
        with `counted` how many of a window's owned frames it really writes.
        """
        loop = asyncio.get_running_loop()
        queues: list[asyncio.Queue[Window | _End]] = [asyncio.Queue(self.queue_size) for _ in range(len(self.stages) + 1)]
        busy = [_Busy() for _ in self.stages]
        meter = meter if meter is not None else ProgressMeter(total_frames)
        written = 0

        async def produce() -> None:
            decode = self._executor("decode")
            while True:
                window = await loop.run_in_executor(decode, next, windows, END)
                await queues[0].put(window)
                if window is END:
                    return

        in_flight: set[cf.Future[Window]] = set()  # calls on shared device executors

        async def stage_task(i: int, stage: Stage) -> None:
            executor = device_executor(stage.device) if stage.device else self._executor(f"stage-{i}-{stage.name}")
            while True:
                item = await queues[i].get()
                if isinstance(item, _End):
                    await queues[i + 1].put(item)
                    return
                started = time.perf_counter()
                call = executor.submit(stage, item)
                in_flight.add(call)
                call.add_done_callback(in_flight.discard)
                result = await asyncio.wrap_future(call, loop=loop)
                busy[i].seconds += time.perf_counter() - started
                if not isinstance(result, Window):
                    raise PipelineError(f"stage {stage.name} returned {type(result).__name__}, not a Window")
                await queues[i + 1].put(result)

        async def consume() -> None:
            nonlocal written
            encode = self._executor("encode")
            while True:
                item = await queues[-1].get()
                if isinstance(item, _End):
                    return
                data = await loop.run_in_executor(encode, write, item)
                if data and on_fragment is not None:
                    await on_fragment(data)
                frames = item.own_stop - item.own_start if counted is None else counted(item)
                written += frames
                event = meter.advance(
                    frames,
                    tuple(StageStats(s.name, b.seconds, queues[i].qsize()) for i, (s, b) in enumerate(zip(self.stages, busy))),
                )
                if on_progress is not None:
                    on_progress(event)

        tasks = [asyncio.create_task(produce(), name="lipstream-produce")]
        tasks += [asyncio.create_task(stage_task(i, s), name=f"lipstream-stage-{s.name}") for i, s in enumerate(self.stages)]
        tasks.append(asyncio.create_task(consume(), name="lipstream-sink"))
        try:
            await _supervise(tasks)
        finally:
            # Threads cannot be interrupted: let each finish its current window so
            # nothing touches a container after the caller closes it, waiting off
            # the event loop so other work on it goes on meanwhile.
            executors = list(self._executors.values())
            self._executors.clear()
            await asyncio.shield(asyncio.to_thread(_shutdown, executors, list(in_flight)))
        return written


def _shutdown(executors: list[cf.ThreadPoolExecutor], calls: list[cf.Future[Window]]) -> None:
    """Stop this job's threads and wait for its calls still running on shared device executors."""
    for call in calls:
        call.cancel()  # only succeeds while it waits for the device: then it never runs
    for executor in executors:
        executor.shutdown(wait=True, cancel_futures=True)
    cf.wait(calls)


async def _supervise(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for all tasks; on the first failure cancel the rest and raise that failure."""
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, LipstreamError):
                raise exc
            raise PipelineError(f"{task.get_name().removeprefix('lipstream-')} failed: {exc!r}") from exc
