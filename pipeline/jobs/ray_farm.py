"""Ray as the farm: actors that hold the loaded models take segments (or whole batch jobs) one at a time.

Ray is imported here only, and only when asked for (`--ray`, `batch --ray`):
without the `ray` extra that is one clear error. An address that does not
answer is found with a short TCP connect before Ray is asked, and a peer
that answers but is not Ray gets about as long (Ray would retry for 20 s). One actor runs per worker slot (a CPU, or a GPU
with `--device cuda*`, `num_gpus=1` each); models load once per actor
process, as in any process. A worker that dies is restarted and its task
retried (`retries`); a task that raises sends its error back as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import urlsplit

from lipstream.config import SyncConfig
from lipstream.errors import InputError, LipstreamError, PipelineError

from .batch import BatchJob, Done, JobReport, Runner, attempt_now
from .farm import FarmJob, Record, SegmentTask, SegmentsDone, encode_segments

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lipstream[ray]'"
CRASH_DIR = "LIPSTREAM_TEST_CRASH_DIR"  # tests: a file `segment-N` there makes a worker die once as segment N begins
GCS_PORT, CLIENT_PORT = 6379, 10001

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RayOptions:
    """Where the cluster is (None: a local Ray on this machine), how many actors, how often a dead worker's task is retried."""

    address: str | None = None
    workers: int | None = None  # default: one per CPU, or per GPU with a CUDA device
    retries: int = 2
    connect_timeout: float = 5.0


def import_ray() -> Any:
    """The `ray` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(f"running on Ray needs the ray extra, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(options: RayOptions) -> Any:
    """Join the cluster at `options.address` (or start a local one) unless this process already did; returns `ray`."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = options.address
    remote = address not in (None, "auto", "local")
    if remote:
        check_reachable(address, options.connect_timeout)  # type: ignore[arg-type]
        # something answers there: let Ray try for about the same time, not its default 20 s
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, round(options.connect_timeout))))
    try:
        with _native_stderr_quiet(remote):
            ray.init(
                address=None if address == "local" else address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,  # its start-up notices are not the user's business; errors still show
            )
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "a local Ray" if address in (None, "local") else f"the Ray cluster at {address}"
        raise InputError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return ray


@contextlib.contextmanager
def _native_stderr_quiet(quiet: bool) -> Iterator[None]:
    """Hold back what Ray's native client writes to fd 2 while it retries a peer that is not Ray (a line a second).

    What it wrote is logged at debug level (-vv) instead, so the user sees one line.
    """
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace").strip()
            if text:
                log.debug("Ray while connecting:\n%s", text)


def check_reachable(address: str, timeout: float) -> None:
    """One line, quickly, when nothing listens at a cluster address (`host:port` or `ray://host:port`)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    default = CLIENT_PORT if parts.scheme == "ray" else GCS_PORT
    try:
        host, port = parts.hostname, parts.port or default
    except ValueError:
        host, port = None, default
    if not host:
        raise InputError(f"--ray {address}: not a cluster address; give HOST:PORT of the head node (e.g. 10.0.0.5:6379) or ray://HOST:10001")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"cannot reach the Ray cluster at {host}:{port} ({reason}); check the address, or start it with `ray start --head`"
        ) from None


class RayWorker:
    """One Ray actor: a process that keeps its models loaded between tasks."""

    def encode(self, task: SegmentTask) -> SegmentsDone:
        return encode_segments(task, on_begin=_crash_for_tests)

    def call(self, function: Callable[[T], R], argument: T) -> R:
        """Run a module-level function here (batch jobs): the models it loads stay loaded for the next."""
        return function(argument)


def _crash_for_tests(index: int) -> None:
    """Die like a killed worker, once per request file, as segment `index` begins (only when the test variable is set)."""
    folder = os.environ.get(CRASH_DIR)
    if not folder:
        return
    request = Path(folder) / f"segment-{index}"
    try:
        request.rename(request.with_name(request.name + ".done"))
    except OSError:
        return
    os._exit(1)


def start_workers(ray: Any, options: RayOptions, device: str, wanted: int) -> list[Any]:
    """At most `wanted` actors, one per worker slot of the cluster, each restarted `options.retries` times if it dies."""
    gpus = 1 if device.startswith("cuda") else 0
    resources = ray.cluster_resources()
    if gpus and resources.get("GPU", 0) < 1:
        raise InputError(f"--device {device} asks for GPUs but the Ray cluster has none; add GPU nodes or use --device cpu")
    slots = int(resources.get("GPU" if gpus else "CPU", 1))
    count = max(1, min(options.workers or slots, wanted))
    actor = ray.remote(RayWorker).options(
        num_cpus=1, num_gpus=gpus, max_restarts=options.retries, max_task_retries=options.retries
    )
    return [actor.remote() for _ in range(count)]


async def run_on_actors(
    ray: Any,
    actors: Sequence[Any],
    items: Sequence[T],
    submit: Callable[[Any, T], Any],
    done: Callable[[T, Any], None],
    failed: Callable[[T, LipstreamError], None] | None = None,
) -> None:
    """Each item to the next free actor (`submit(actor, item)` returns the ref); `done(item, result)` in completion order.

    A task's error is raised, or handed to `failed(item, error)` when given (the rest go on).
    """
    queue = list(items)
    free = list(actors)
    pending: dict[Any, tuple[Any, T]] = {}
    try:
        while queue or pending:
            while queue and free:
                actor, item = free.pop(0), queue.pop(0)
                pending[submit(actor, item)] = (actor, item)
            ready, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1)
            for ref in ready:
                actor, item = pending.pop(ref)
                free.append(actor)
                try:
                    result = await asyncio.to_thread(_result, ray, ref)
                except LipstreamError as exc:
                    if failed is None:
                        raise
                    failed(item, exc)
                    continue
                done(item, result)
    finally:
        for ref in pending:  # stopped early (an error, a cancel): the rest is not wanted; the actors are killed after
            with contextlib.suppress(Exception):
                ray.cancel(ref)


def _result(ray: Any, ref: Any) -> Any:
    """The task's value; its own LipstreamError as it was raised; a worker that kept dying as a PipelineError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, LipstreamError):
            raise cause from None
        raise PipelineError(f"a Ray worker failed: {cause!r}") from None
    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
        raise PipelineError(f"a Ray worker died and its retries were used up: {str(exc).splitlines()[0]}") from None


class RayFarm:
    """Segments of one output on Ray actors, one segment per task (a free actor takes the next)."""

    def __init__(self, options: RayOptions = RayOptions()) -> None:
        self.options = options

    async def run(self, job: FarmJob, record: Record) -> None:
        ray = await asyncio.to_thread(connect, self.options)
        actors = await asyncio.to_thread(start_workers, ray, self.options, job.config.device, len(job.todo))
        log.info("%d segment(s) of %s on %d Ray worker(s)", len(job.todo), job.output, len(actors))
        try:
            await run_on_actors(
                ray,
                actors,
                [(index,) for index in job.todo],
                lambda actor, indices: actor.encode.remote(job.task(indices)),
                lambda indices, result: record(result),
            )
        finally:
            for actor in actors:
                ray.kill(actor)


def ray_runner(options: RayOptions, base: SyncConfig) -> Runner:
    """A runner for `BatchRun.run`: each job whole on the next free actor (a worker that keeps dying fails that job only)."""

    async def runner(jobs: Sequence[BatchJob], done: Done) -> None:
        ray = await asyncio.to_thread(connect, options)
        actors = await asyncio.to_thread(start_workers, ray, options, base.device, len(jobs))
        log.info("%d job(s) on %d Ray worker(s)", len(jobs), len(actors))

        def failed(job: BatchJob, error: LipstreamError) -> None:
            done(job, JobReport(job.line, str(job.video), str(job.audio), str(job.out), "error", error=str(error), retriable=True))

        try:
            await run_on_actors(ray, actors, list(jobs), lambda actor, job: actor.call.remote(attempt_now, (job, base)), done, failed)
        finally:
            for actor in actors:
                ray.kill(actor)

    return runner
