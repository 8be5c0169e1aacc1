"""Partial files beside OUT: names with the writer's pid, stale ones removed, a live run's never; the lock; errors."""

import errno
import os
import subprocess
import sys

import pytest

from lipstream.errors import OutputError
from lipstream.stream.partials import (
    StateLock,
    check_free_space,
    output_error,
    partial_path,
    remove_stale_partials,
    state_folder,
)


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_partials_of_gone_writers_for_this_output_are_removed(tmp_path):
    out = tmp_path / "out.mp4"
    mine = partial_path(out)
    assert mine.name.startswith(f".out.mp4.{os.getpid()}.") and mine.name.endswith(".part")
    gone = tmp_path / f".out.mp4.{dead_pid()}.0badc0de.part"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = tmp_path / f".out.mp4.{live.pid}.1234abcd.part"
        other_output = tmp_path / f".other.mp4.{dead_pid()}.0badc0de.part"
        not_ours = tmp_path / ".out.mp4.notes.part"
        for path in (mine, gone, alive, other_output, not_ours):
            path.write_bytes(b"x")
        assert remove_stale_partials(out) == [gone]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, alive, other_output, not_ours))
    finally:
        live.kill()
        live.wait()


def test_one_run_per_output_at_a_time(tmp_path):
    out = tmp_path / "out.mp4"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path; from lipstream.stream.partials import StateLock; "
         f"lock = StateLock(Path({str(out)!r})); lock.acquire(); print('held', flush=True); import time; time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(OutputError) as error:
            StateLock(out).acquire()
        assert f"pid {holder.pid}" in str(error.value) and "another lipstream run" in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    lock = StateLock(out)
    lock.acquire()  # the kernel let go of the killed holder's lock
    lock.release(remove=True)
    assert not state_folder(out).exists()


@pytest.mark.parametrize(
    "code,needle",
    [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
     (errno.EISDIR, "is a folder"), (errno.EIO, "cannot write")],
)
def test_output_errors_name_the_place_and_the_fix(tmp_path, code, needle):
    message = str(output_error(OSError(code, os.strerror(code)), tmp_path / "out.mp4"))
    assert needle in message and str(tmp_path) in message and ";" in message


def test_free_space_is_checked_before_the_work(tmp_path):
    check_free_space(tmp_path, 1)
    with pytest.raises(OutputError) as error:
        check_free_space(tmp_path, 1 << 60)
    assert "not enough free space" in str(error.value) and str(tmp_path) in str(error.value)
