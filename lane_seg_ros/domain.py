"""ROS processes side by side on one machine: a DDS domain of their own and the environment they need."""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

DOMAIN_IDS = range(1, 201)  # 0 is everyone's default; Fast-DDS's port formula allows up to 232
PROFILE_NAME = "fastdds_shm.xml"


@dataclass
class DomainLease:
    """A ROS_DOMAIN_ID held through a lock file until `release()` (or the process ends)."""

    domain_id: int
    _lock: IO = field(repr=False)

    def release(self) -> None:
        self._lock.close()

    def __enter__(self) -> DomainLease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def reserve_domain_id(skip: set[int] | frozenset[int] = frozenset()) -> DomainLease:
    """A domain id that no other lane_seg test, benchmark or demo on this machine holds (flock on a file per id).

    Processes in one domain see each other's topics: two runs sharing one would mix their frames.
    """
    first = os.getpid() % len(DOMAIN_IDS)
    for i in range(len(DOMAIN_IDS)):
        domain_id = DOMAIN_IDS[(first + i) % len(DOMAIN_IDS)]
        if domain_id in skip:
            continue
        lock = open(Path(tempfile.gettempdir()) / f"lane_seg_ros_domain_{domain_id}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        return DomainLease(domain_id, lock)
    raise RuntimeError(f"all ROS domain ids {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1} are held by other runs")


def fastdds_profile() -> Path:
    """config/fastdds_shm.xml of the installed package (ament index), else of this source checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("lane_seg")) / "config" / PROFILE_NAME
        if installed.is_file():
            return installed
    except (ImportError, LookupError, OSError):  # not installed, or AMENT_PREFIX_PATH unset
        pass
    return Path(__file__).resolve().parents[1] / "config" / PROFILE_NAME


def ros_environment(domain_id: int, log_dir: str | os.PathLike) -> dict[str, str]:
    """What a child process running ROS needs: this domain, localhost-only discovery, its log folder, the SHM profile.

    The shared-memory profile matters for camera frames: with Fast-DDS's default 512 KB segment a 720p image
    sent best effort is fragmented and mostly lost.
    """
    return {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # no DDS traffic leaves this machine
        "ROS_LOG_DIR": str(log_dir),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(fastdds_profile()),
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "PYTHONUNBUFFERED": "1",
    }
