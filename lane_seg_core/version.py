"""Which lane_seg this is: the package version plus the source tree's git commit when there is one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import __version__


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{__version__}+g{commit}"
    except (OSError, subprocess.SubprocessError):
        return __version__
