"""Where the output cannot go: a folder, read-only, full, stdout closed or given up by its reader.

Each is one line naming the path and the fix and a documented exit code,
never "internal error", and nothing half-written is left behind. Read-only
and full file systems are real: a tmpfs mounted in a private mount
namespace (`unshare`), skipped where the system does not allow one.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from media import SAMPLE_AUDIO, SAMPLE_VIDEO, run_cli

LIPSTREAM = [sys.executable, "-m", "lipstream"]


def one_line(result, code):
    text = result.stderr.decode()
    assert result.returncode == code, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lipstream: error: "), text
    assert "Traceback" not in text and "internal error" not in text and "Exception ignored" not in text, text
    return lines[0]


def sync(*args, **kwargs):
    return run_cli(["sync", SAMPLE_VIDEO, SAMPLE_AUDIO, *args, "--engine", "passthrough"], **kwargs)


def test_an_output_that_is_a_folder(tmp_path):
    line = one_line(sync("-o", tmp_path), 2)
    assert f"the output {tmp_path} is a folder" in line and "out.mp4" in line


def test_stdout_closed(tmp_path):
    result = subprocess.run([*LIPSTREAM, "sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", "-", "--engine", "passthrough"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1), timeout=120)
    assert "standard output is closed" in one_line(result, 2)


def test_stdout_on_a_full_device(tmp_path):
    with open("/dev/full", "wb") as full:
        result = subprocess.run([*LIPSTREAM, "sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", "-", "--engine", "passthrough"],
                                stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert "cannot write to standard output: No space left on device" in one_line(result, 2)


def test_a_reader_that_closes_the_pipe_early(tmp_path):
    proc = subprocess.Popen([*LIPSTREAM, "sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", "-", "--engine", "passthrough"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(1000)) == 1000  # like `ffprobe -i -`: read the header, then go
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=120)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", stderr)
    assert "closed the pipe before the end" in one_line(result, 141)


def private_tmpfs(folder, options, *command):
    """Run `command` with a fresh tmpfs (mount `options`) on `folder`, seen only by it; then list what it left there."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; shift 2; "$@"; code=$?; ls -A "$OLDPWD_DIR" >&2; exit $code'
    env = {**os.environ, "OLDPWD_DIR": str(folder)}
    args = ["unshare", "-rm", "sh", "-c", script, "sh", options, str(folder), *map(str, command)]
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=180, env=env)
    if result.returncode == 99 or b"unshare failed" in result.stderr or b"Operation not permitted" in result.stderr[:200]:
        pytest.skip(f"cannot mount a private tmpfs here: {result.stderr.decode()[:200]}")
    lines = result.stderr.decode().splitlines()
    errors = [line for line in lines if line.startswith("lipstream:")]
    left = [line for line in lines if not line.startswith("lipstream:") and line.strip()]
    return result.returncode, errors, left


def sync_into_tmpfs(tmp_path, options, *extra):
    """`lipstream sync` of the sample into a fresh private tmpfs: (exit code, its error lines, what it left there, the folder)."""
    folder = tmp_path / "mounted"
    folder.mkdir()
    args = [*LIPSTREAM, "sync", SAMPLE_VIDEO, SAMPLE_AUDIO, "-o", folder / "out.mp4", "--engine", "passthrough", *extra]
    return (*private_tmpfs(folder, options, *args), folder)


def test_a_read_only_folder(tmp_path):
    code, errors, left, folder = sync_into_tmpfs(tmp_path, "ro,size=1m")
    assert code == 2 and len(errors) == 1, errors
    assert f"cannot write to {folder}: read-only file system" in errors[0] and "another folder" in errors[0]
    assert left == []


def test_a_full_disk_is_seen_before_the_work_when_the_size_can_be_estimated(tmp_path):
    code, errors, left, folder = sync_into_tmpfs(tmp_path, "size=200k")
    assert code == 2 and len(errors) == 1, errors
    assert f"not enough free space in {folder}" in errors[0] and "MB are free" in errors[0]
    assert left == []


def test_a_disk_that_fills_up_during_the_work(tmp_path):
    # --crf alone: the size cannot be estimated, so the disk fills up while segments are written
    code, errors, left, folder = sync_into_tmpfs(tmp_path, "size=200k", "--crf", "10")
    assert code == 2 and len(errors) == 1, errors
    assert f"no space left in {folder}" in errors[0] and "free some space" in errors[0]
    assert left == []


def test_json_errors_for_the_environment_are_events_too(tmp_path):
    result = sync("-o", tmp_path, "--json")
    assert result.returncode == 2
    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert [e["event"] for e in events] == ["error"] and "is a folder" in events[0]["message"]
