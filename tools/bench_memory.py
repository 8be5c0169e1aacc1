"""Where a job's resident memory goes, over time: what the code holds against what the allocator keeps.

    python tools/bench_memory.py [--every 0.5] [--trim] -- sync VIDEO AUDIO -o OUT [sync options]

Runs `lipstream ARGS` in a fresh process that samples itself every `--every`
seconds: resident memory split into file-backed pages (libraries, mapped
files: shared, dropped first under pressure) and anonymous ones, and glibc's
own account of the heap (`mallinfo2`): bytes the program holds (in use,
mmapped blocks included; allocated, so pages not yet touched count too) and
bytes freed but kept inside glibc's arenas.
A peak well above "in use" is allocator retention, which `malloc_trim`
returns; a peak made of "in use" is memory the job really holds (decoded
pictures, the encoder's lookahead, weights, torch itself).

`--trim` calls `malloc_trim(0)` after every sample: the what-if for
returning freed arena memory continuously (it costs page faults when the
memory is needed again; "kept free" still counts the bytes it handed back,
since glibc keeps them as free blocks). Prints a table of the samples (every 5th) and a
summary line; `--json` prints the samples instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs in the job's own process: a sampler thread, then the CLI itself.
_SAMPLER = r"""
import ctypes, json, sys, threading, time
report, every, trim = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
sys.argv = ["lipstream", *sys.argv[4:]]

class _Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

try:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Info
    mallinfo, malloc_trim = libc.mallinfo2, libc.malloc_trim
except (OSError, AttributeError):
    mallinfo = malloc_trim = None

def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields

samples, start = [], time.monotonic()

def sample():
    row = {"t": round(time.monotonic() - start, 2), **status()}
    if mallinfo is not None:
        info = mallinfo()
        row["in_use"] = (info.uordblks + info.hblkhd) / 2**20
        row["kept_free"] = info.fordblks / 2**20
    samples.append(row)
    if trim and malloc_trim is not None:
        malloc_trim(0)

def loop():
    while True:
        sample()
        time.sleep(every)

threading.Thread(target=loop, daemon=True).start()
from lipstream.cli import main
try:
    code = main(sys.argv[1:])
finally:
    sample()
    with open(report, "w") as f:
        json.dump(samples, f)
sys.exit(code)
"""


def run(args: list[str], every: float, trim: bool) -> tuple[int, list[dict[str, float]]]:
    """The job's exit code and its samples."""
    handle, report = tempfile.mkstemp(prefix="bench-memory-", suffix=".json")
    os.close(handle)
    try:
        code = subprocess.call([sys.executable, "-c", _SAMPLER, report, str(every), "1" if trim else "0", *args], stdout=subprocess.DEVNULL)
        text = Path(report).read_text()
        return code, json.loads(text) if text else []
    finally:
        os.unlink(report)


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    """Peak (the kernel's high-water mark), the sample nearest it split up, and the run's median."""
    top = max(samples, key=lambda s: s["VmRSS"])
    out = {
        # the kernel updates its high-water mark lazily: a sample may read a little above it
        "peak_mb": max(samples[-1]["VmHWM"], top["VmRSS"]),
        "sampled_peak_mb": top["VmRSS"],
        "at_peak_anon_mb": top["RssAnon"],
        "at_peak_file_mb": top["RssFile"],
        "median_mb": statistics.median(s["VmRSS"] for s in samples),
    }
    if "in_use" in top:
        out["at_peak_in_use_mb"] = top["in_use"]
        out["at_peak_kept_free_mb"] = top["kept_free"]
        out["most_kept_free_mb"] = max(s["kept_free"] for s in samples)
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s [--every S] [--trim] [--json] -- LIPSTREAM ARGS")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples (default 0.5)")
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after every sample")
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument("job", nargs=argparse.REMAINDER, help="the lipstream command line, after --")
    args = parser.parse_args()
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    if not job:
        parser.error("give the lipstream command line after --, e.g. -- sync in.mp4 speech.wav -o out.mp4")
    code, samples = run(job, args.every, args.trim)
    if code != 0 or not samples:
        sys.exit(f"bench_memory: the job exited with {code}")
    if args.json:
        for s in samples:
            print(json.dumps(s))
        return
    print("| s | RSS MB | anon | file | malloc in use | kept free in arenas |")
    print("|---|---|---|---|---|---|")
    for s in samples[::5] + ([samples[-1]] if (len(samples) - 1) % 5 else []):
        print(f"| {s['t']:.1f} | {s['VmRSS']:.0f} | {s['RssAnon']:.0f} | {s['RssFile']:.0f} | {s.get('in_use', float('nan')):.0f} | {s.get('kept_free', float('nan')):.0f} |")
    print(json.dumps(summary(samples)))


if __name__ == "__main__":
    main()
