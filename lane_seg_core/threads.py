"""How many CPU threads torch uses: by default half the CPUs this process may run on, never all of them.

With torch's own default (one thread per core) a 720p frame through the built-in model took a median 40 ms and up
to 164 ms on a 2-core machine while one other process kept a core busy, against 30 ms (max 44) with one thread:
torch's worker threads wait for each other on a core they share with someone else. A vehicle computer always has
other processes, so the default leaves them room.
"""

from __future__ import annotations

import os

import torch

MAX_THREADS = 256


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's quota of cores), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_threads(requested: int = 0) -> int:
    """The torch CPU thread count for `requested`: itself when > 0, else half the available CPUs (at least 1)."""
    if isinstance(requested, bool) or not isinstance(requested, int) or not 0 <= requested <= MAX_THREADS:
        raise ValueError(f"threads must be an integer in [0, {MAX_THREADS}] (0 = half the CPUs), got {requested!r}")
    return requested or max(1, available_cpus() // 2)


def use_cpu_threads(requested: int = 0) -> int:
    """Set torch's CPU threads (see cpu_threads); the number set."""
    threads = cpu_threads(requested)
    torch.set_num_threads(threads)
    return threads
