"""Profiling the orchestrator with py-spy while the client runs, and summarising the samples.

py-spy samples the orchestrator from outside (see `KINDS`) and writes collapsed stacks
(``--format raw``: one ``frame;frame;... count`` line per distinct stack). `hot_spots` turns them
into the functions with the most samples, by self time (the leaf frame) and by inclusive time
(anywhere on the stack, without the frames every sample shares).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The py-spy executable beside the interpreter, or on PATH; None when not installed."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


KINDS: dict[str, tuple[str, ...]] = {
    "all": ("--nonblocking", "--rate", "250"),
    "gil": ("--nonblocking", "--gil", "--rate", "250"),
    "native": ("--native", "--gil", "--rate", "100"),
}
"""The profiles py-spy can record, by name, and its flags for each.

all: every thread's Python frames; the process is never paused. Time in native code (grpc's
Cython and C core, sqlite3, protobuf's upb) shows up as self time of the Python frame that
called it — mostly ``Handle._run``, the event loop running a callback of grpc's Cython code.
gil: the same, but only the thread holding the GIL — what the process's one Python core is spent on.
native: the GIL holder's Python and native frames (syscalls, upb, cygrpc). py-spy pauses the
process at each sample to unwind it, which slows baton down (about a third at 100 Hz here).
"""


def start_recording(pid: int, output: Path, kind: str = "all") -> subprocess.Popen[bytes]:
    """Starts py-spy recording `pid` into `output` (collapsed stacks) until `stop_recording`.

    Args:
        pid: The process to sample.
        output: Where the collapsed stacks go.
        kind: Which profile, a key of `KINDS`.
    """
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    argv = [exe, "record", "--pid", str(pid), "--format", "raw", *KINDS[kind]]
    return subprocess.Popen(
        [*argv, "--output", str(output)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def stop_recording(recorder: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """Stops py-spy (SIGINT makes it write its output) and returns what it printed."""
    if recorder.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            recorder.send_signal(signal.SIGINT)
    try:
        out, _ = recorder.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        recorder.kill()
        out, _ = recorder.communicate(timeout=5)
    return out.decode(errors="replace")


BOILERPLATE = (
    "_run_module_as_main ",
    "_run_code ",
    "<module> (server/cli.py)",
    "main (server/cli.py)",
    "cmd_serve (server/cli.py)",
    "_serve_until_stopped (server/cli.py)",
    "<module> (server/cli/__main__.py)",
    "main (server/cli/_parser.py)",
    "cmd_serve (server/cli/_commands.py)",
    "_serve_until_stopped (server/cli/_commands.py)",
    "run (asyncio/runners.py)",
    "Runner.run (asyncio/runners.py)",
    "BaseEventLoop.run_until_complete ",
    "BaseEventLoop.run_forever ",
    "BaseEventLoop._run_once ",
    "Handle._run ",
    "task_step ",
    "task_step_impl ",
    "TaskStepMethWrapper_call ",
    "Thread._bootstrap ",
    "Thread._bootstrap_inner ",
    "thread_run ",
    "[native] (libc",
)
"""Frames under nearly every sample (the entry point, the loop, a thread's start): left out of the
inclusive ranking, where they would only push the informative functions down."""


def _short(frame: str) -> str:
    """``fn (pkg/mod.py:123)`` → ``fn (pkg/mod.py)``: one entry per function (py-spy shortens paths)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if name.startswith("0x"):  # an unsymbolised native frame: one entry per library
        name = "[native]"
    return f"{name} ({path})" if path else name


def hot_spots(collapsed: Path, top: int = 20) -> dict[str, Any]:
    """The `top` functions by self and by inclusive share of the samples in a py-spy raw file."""
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        # With py-spy --threads or --subprocesses, the first frames name the thread or process.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            if not frame.startswith(BOILERPLATE):
                inclusive[frame] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": n, "percent": round(100.0 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {"samples": total, "self": share(self_samples), "inclusive": share(inclusive)}


def format_hot_spots(spots: dict[str, Any], top: int = 15) -> str:
    """Markdown tables of the hot spots."""
    lines = [f"py-spy samples of the orchestrator: {spots['samples']}", ""]
    for kind in ("self", "inclusive"):
        lines += [f"| {kind} % | function |", "|---:|---|"]
        lines += [f"| {row['percent']:.1f} | `{row['function']}` |" for row in spots[kind][:top]]
        lines.append("")
    return "\n".join(lines)
