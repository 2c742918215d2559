"""Building the messages into the environment again (make after a msg/ change) works on an already-built venv."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_rebuilding_the_messages_into_a_built_environment_succeeds():
    pytest.importorskip("lane_seg.msg")  # built once by make: this is the second build
    result = subprocess.run(["bash", str(REPO / "tools" / "build_ros_into_venv.sh"), sys.prefix],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "built lane_seg/msg (Lane, LaneArray)" in result.stdout
