"""One model executor per device for the whole process.

Model stages run on their device's single worker thread, whichever job they
belong to, so two jobs on `cuda:0` take turns on the GPU instead of
competing for its memory, and a model is never run by two threads at once.
The executors live as long as the process; jobs never shut them down.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading

__all__ = ["device_executor", "device_key"]

_EXECUTORS: dict[str, cf.ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def device_key(device: str) -> str:
    """One name per device: `cuda` and `cuda:0` are the same GPU."""
    device = device.strip().lower()
    return f"{device}:0" if device in ("cuda", "mps", "xpu") else device


def device_executor(device: str) -> cf.ThreadPoolExecutor:
    """The process-wide single-thread executor of `device`."""
    key = device_key(device)
    with _LOCK:
        executor = _EXECUTORS.get(key)
        if executor is None:
            executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lipstream-{key}")
            _EXECUTORS[key] = executor
        return executor
