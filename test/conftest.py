"""Suite-wide guard: no test module may leave a process running.

pytest makes itself a child subreaper (Linux prctl), so a process whose parent died (a node started by a shell
that a docs check ran, say) is re-parented to pytest instead of init and cannot escape the check. After each
test module, once its fixtures are torn down, every descendant still running is reported as an error of that
module and its process group is stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from processes import Children, stop_group  # test/ is on sys.path (pytest prepend import mode)

PR_SET_CHILD_SUBREAPER = 36
# Helpers Python's multiprocessing starts once and keeps for the life of the process that started them (pytest)
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # `make test &` in a script starts pytest with SIGINT ignored, and every process it starts would inherit
        # that: launch keeps an ignored SIGINT ignored, so the tests' Ctrl-C could not stop a launch. A handled
        # signal is reset to the default in each child.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        # Each test process (pytest-xdist worker) gets its share of the cores, it and the processes it starts
        # (OMP_NUM_THREADS): torch's default of a thread per core, in two processes at once, has threads waiting
        # for each other on shared cores (lane_seg_core/threads.py).
        import torch

        from lane_seg_core.threads import available_cpus

        share = max(1, available_cpus() // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(share))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def running_descendants(root: int) -> dict[int, tuple[int, str]]:
    """{pid: (process group, command line)} of the running (not zombie) descendants of `root`."""
    parents, groups, zombies = {}, {}, set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid], groups[pid] = int(fields[1]), int(fields[2])
        if fields[0] == "Z":
            zombies.add(pid)
    found = {}
    for pid in parents:
        ancestor = parents[pid]
        while ancestor not in (0, 1, root) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root and pid not in zombies:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                command = "?"
            if parents[pid] == root and any(helper in command for helper in INTERPRETER_HELPERS):
                continue
            found[pid] = (groups[pid], command.strip())
    return found


@pytest.fixture(scope="module", autouse=True)
def no_process_left_behind(request: pytest.FixtureRequest):
    """Module teardown (after the module's own fixtures): fail if a child process still runs, and stop it."""
    yield
    left = running_descendants(os.getpid())
    for _ in range(5):  # a dying shell may still fork: look again until nothing is left
        running = running_descendants(os.getpid())
        if not running:
            break
        for pid, (group, _) in running.items():
            if group != os.getpgid(0):
                stop_group(group, grace_s=2.0)
            else:  # started without a group of its own: only the process itself can be stopped
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    if left:
        shown = "\n".join(f"  pid {pid} (group {group}): {command[:200]}" for pid, (group, command) in left.items())
        pytest.fail(f"{request.module.__name__} left {len(left)} process(es) running (now stopped):\n{shown}",
                    pytrace=False)


@pytest.fixture
def children():
    """Start a test's child processes with `children.start(argv, **popen)`; their groups are stopped at its end."""
    started = Children()
    yield started
    started.stop_all()
