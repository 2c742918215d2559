"""Child processes for tests: each in a process group of its own, and the whole group stopped when the test ends.

A test that times out (pytest-timeout raises in the test) or fails must not leave a node, a training or a docs
check running on the 2 cores the rest of the suite needs. `run` is `subprocess.run` with that guarantee;
`Spawned` is a `Popen` for processes that run beside the test. Both stop the group with SIGINT (ROS nodes and the
trainer shut down cleanly on it), then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

GRACE_S = 5.0


def group_members(pgid: int) -> dict[int, list[str]]:
    """{pid: argv} of the running processes of process group `pgid` (zombies count as gone)."""
    members = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":  # fields: state, ppid, pgrp, ...
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        members[int(stat.parent.name)] = [a.decode(errors="replace") for a in argv if a]
    return members


def group_alive(pgid: int) -> bool:
    """Whether any process of process group `pgid` is still running (zombies count as gone)."""
    return bool(group_members(pgid))


def stop_group(pgid: int, grace_s: float = GRACE_S) -> None:
    """SIGINT to the whole group, then SIGKILL to what is left after `grace_s`; returns when nothing runs."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.05)


class Spawned:
    """`subprocess.Popen(argv, start_new_session=True)` whose group `stop()` ends; stdout+stderr go to a file.

    Output goes to a file, not a pipe, so a chatty child never blocks on a full pipe while the test waits.
    Use it as a context manager, or call `stop()` in a finally.
    """

    def __init__(self, argv: Sequence[str], log: Path | None = None, **popen) -> None:
        if log is None:
            handle, name = tempfile.mkstemp(prefix="lane_seg_child_", suffix=".log")
            os.close(handle)
            log = Path(name)
        self.log_path = Path(log)
        self.argv = list(argv)
        with open(self.log_path, "wb") as out:
            popen.setdefault("stdin", subprocess.DEVNULL)
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                            **popen)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """The exit code; TimeoutError with the end of the output when it runs longer than `timeout` s."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.argv[:4]} still running after {timeout} s; output:\n{self.output()[-3000:]}") \
                from None

    def signal(self, sig: int) -> None:
        """Send `sig` to the process itself (not the group), as Ctrl-C in its terminal would reach a lone program."""
        self.process.send_signal(sig)

    def stop(self, grace_s: float = GRACE_S) -> int | None:
        """Stop the whole process group (SIGINT, SIGKILL after `grace_s`); the exit code."""
        stop_group(self.process.pid, grace_s)
        try:
            return self.process.wait(10.0)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> "Spawned":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Children:
    """Processes a test starts with `start` (a `Popen` each, in a group of its own); `stop_all` ends every group.

    The `children` fixture (conftest.py) stops them when the test ends, passed or failed.
    """

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, argv: Sequence[str], **popen) -> subprocess.Popen:
        process = subprocess.Popen(list(argv), start_new_session=True, **popen)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            stop_group(process.pid)
            if process.poll() is None:
                process.kill()
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            process.wait()


def run(argv: Sequence[str], timeout: float, **popen) -> subprocess.CompletedProcess:
    """`subprocess.run(argv, capture_output=True, text=True, timeout=...)` in a process group of its own.

    On timeout, on any exception (pytest-timeout's included) and after a normal exit, whatever is left of the
    group (a background process the child started) is stopped. A timeout raises AssertionError with the output.
    """
    with tempfile.TemporaryDirectory(prefix="lane_seg_run_") as folder:
        out_path, err_path = Path(folder) / "stdout", Path(folder) / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            popen.setdefault("stdin", subprocess.DEVNULL)
            process = subprocess.Popen(list(argv), stdout=out, stderr=err, start_new_session=True, **popen)
        try:
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
        finally:
            stop_group(process.pid)
            process.wait()
        stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if code is None:
        raise AssertionError(f"{list(argv)[:6]} did not finish within {timeout} s (stopped)\n"
                             f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(list(argv), code, stdout, stderr)
