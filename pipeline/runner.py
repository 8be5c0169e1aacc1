"""Run stages as concurrent tasks on bounded queues.

    producer ──q──> stage 1 ──q──> ... ──q──> stage n ──q──> sink
    (decode thread)  (worker thread or device executor)      (encode thread)

The runner owns every task, queue and thread of its job; stages stay plain
callables. Model stages run on their device's process-wide executor
(`executors.device_executor`), shared with concurrent jobs.

Memory is a budget of windows, not a size per queue: a window is admitted
(decoding starts) only while fewer than `in_flight` windows are between the
decoder and the end of their encoding, so the decoded pictures alive at
once are about `in_flight` x stride + overlap, whatever the video's length
(1080x1920 yuv420p: 3 MB a picture). By default the decoder and the plain
stages work one window ahead of the encoder (2), plus one window per model
stage that has cores of its own to keep busy: one on an accelerator, or on
the CPU of a machine with more than `SMALL_MACHINE_CORES` cores. Elsewhere
every stage shares the codec's few cores and a deeper pipeline bought
nothing measurable, only memory (demo2 on 2 cores: exemplar 17.3, 16.5 and
17.2 s with 2, 3 and 4 windows, 671, 724 and 780 MB; wav2lip on the CPU
32.1, 31.7 and 32.1 s with 2, 3 and 4 windows, medians of three, peaks
1.08-1.22, 1.15-1.26 and 1.22-1.32 GB; retalking fast, 100 frames: 91 and
89 s with 2 and 4 windows, 2.10 and 2.27 GB). Bounded
queues per hop held up to three windows each (two queued, one finished and
waiting to be put): 186 pictures alive at once in that job, 56 now.

End of stream is an explicit item that drains every stage in order; an
error or a cancellation cancels every task at once, aborts the sink
(removing its temporary file) and re-raises the first error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import os
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

SMALL_MACHINE_CORES = 4  # at most this many: a CPU model stage shares its cores with the codec


def available_cores() -> int:
    """Cores this process may run on (its affinity, where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_in_flight(stages: Sequence[Stage], cores: int | None = None) -> int:
    """Windows admitted at once when the user names none: 2, plus one per model stage with cores of its own."""
    cores = available_cores() if cores is None else cores
    return 2 + sum(1 for s in stages if s.device and (not s.device.startswith("cpu") or cores > SMALL_MACHINE_CORES))


@dataclass
class _Busy:
    seconds: float = 0.0


class Runner:
    """Connects a window producer, stages and a sink, and runs them to the end."""

    def __init__(self, stages: Sequence[Stage], *, in_flight: int | None = None) -> None:
        """`in_flight`: windows admitted at once (at least 1); None: `default_in_flight`."""
        self.stages = list(stages)
        self.in_flight = max(1, in_flight if in_flight is not None else default_in_flight(self.stages))
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
        # Admission is the bound: no queue can hold more than the windows admitted.
        admitted = asyncio.Semaphore(self.in_flight)
        queues: list[asyncio.Queue[Window | _End]] = [asyncio.Queue(self.in_flight) for _ in range(len(self.stages) + 1)]
        busy = [_Busy() for _ in self.stages]
        meter = meter if meter is not None else ProgressMeter(total_frames)
        written = 0

        async def produce() -> None:
            decode = self._executor("decode")
            while True:
                await admitted.acquire()  # released when a window's encoding ends
                window = await loop.run_in_executor(decode, next, windows, END)
                await queues[0].put(window)
                if window is END:
                    return
                del window  # a task keeps no window it handed on: its pictures go when the encoder is done

        calls: set[cf.Future[Window]] = set()  # calls on shared device executors

        async def stage_task(i: int, stage: Stage) -> None:
            executor = device_executor(stage.device) if stage.device else self._executor(f"stage-{i}-{stage.name}")
            while True:
                item = await queues[i].get()
                if isinstance(item, _End):
                    await queues[i + 1].put(item)
                    return
                started = time.perf_counter()
                call = executor.submit(stage, item)
                calls.add(call)
                call.add_done_callback(calls.discard)
                del item
                result = await asyncio.wrap_future(call, loop=loop)
                del call  # the future holds the result too
                busy[i].seconds += time.perf_counter() - started
                if not isinstance(result, Window):
                    raise PipelineError(f"stage {stage.name} returned {type(result).__name__}, not a Window")
                await queues[i + 1].put(result)
                del result

        async def consume() -> None:
            nonlocal written
            encode = self._executor("encode")
            while True:
                item = await queues[-1].get()
                if isinstance(item, _End):
                    return
                data = await loop.run_in_executor(encode, write, item)
                frames = item.own_stop - item.own_start if counted is None else counted(item)
                del item
                admitted.release()
                if data and on_fragment is not None:
                    await on_fragment(data)
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
            await asyncio.shield(asyncio.to_thread(_shutdown, executors, list(calls)))
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
