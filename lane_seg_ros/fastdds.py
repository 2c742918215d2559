"""Whether this process's Fast-DDS can carry camera frames: a shared-memory transport with a large segment.

Fast-DDS's default shared-memory segment is 512 KB. A frame larger than that (640x360 bgr8 is 675 KB, 1280x720 is
2.7 MB) is fragmented, and sent best effort (sensor-data QoS, what camera drivers use) it mostly never arrives:
the node looks dead. The package's profile (config/fastdds_shm.xml, 16 MiB) fixes it when every process that
sends or receives images loads it. This module tells whether one is loaded, so the node can say so at start-up.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_FILES_IN_CWD = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")  # Fast-DDS reads these too
DEFAULT_SEGMENT_BYTES = 512 * 1024
CAMERA_SEGMENT_BYTES = 4 * 1024 * 1024  # holds a 720p bgr8 frame (2.7 MB) whole


def profile_file(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The XML profile file Fast-DDS loads in this process, if any (the environment first, then the working folder)."""
    environ = os.environ if environ is None else environ
    for name in PROFILE_VARIABLES:
        if environ.get(name):
            return Path(environ[name])
    for name in PROFILE_FILES_IN_CWD:
        candidate = (cwd or Path.cwd()) / name
        if candidate.is_file():
            return candidate
    return None


def shared_memory_segment(path: Path) -> int | None:
    """The largest SHM transport segment (bytes) a profile file declares; None when it declares none."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    sizes = []
    for descriptor in root.iter():
        if descriptor.tag.rsplit("}", 1)[-1] != "transport_descriptor":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in descriptor}
        if fields.get("type") == "SHM":
            try:
                sizes.append(int(fields.get("segment_size", DEFAULT_SEGMENT_BYTES)))
            except ValueError:
                continue
    return max(sizes) if sizes else None


def camera_frames_problem(environ: dict[str, str] | None = None, cwd: Path | None = None) -> str | None:
    """Why large camera frames may not arrive in this process (no or a small shared-memory segment); None when fine."""
    path = profile_file(environ, cwd)
    if path is None:
        return ("no Fast-DDS profile is loaded (FASTDDS_DEFAULT_PROFILES_FILE is unset), so the shared-memory "
                "segment is Fast-DDS's default 512 KB")
    if not path.is_file():
        return f"the Fast-DDS profile {path} (FASTDDS_DEFAULT_PROFILES_FILE) does not exist"
    segment = shared_memory_segment(path)
    if segment is None or segment < CAMERA_SEGMENT_BYTES:
        shown = "no SHM transport" if segment is None else f"an SHM segment of {segment / 2**20:.1f} MiB"
        return f"the Fast-DDS profile {path} declares {shown} (camera frames need {CAMERA_SEGMENT_BYTES // 2**20} MiB)"
    return None


def packaged_profile() -> str:
    """Where the package's profile is: the installed share folder, else the source tree's config/."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("lane_seg")) / "config" / "fastdds_shm.xml"
        if installed.is_file():
            return str(installed)
    except Exception:  # noqa: BLE001 - no ament index (a plain venv): fall back to the source tree
        pass
    source = Path(__file__).resolve().parents[1] / "config" / "fastdds_shm.xml"
    return str(source) if source.is_file() else "<lane_seg share>/config/fastdds_shm.xml"
