"""The `lane-seg` command with the ROS-side subcommands (bag, play, record, drive, demo) added to the core's."""

from __future__ import annotations

import sys
from typing import Sequence

from lane_seg_core import cli as core_cli

from .bag import add_bag_command  # these import rclpy, rosbags and torch only when their command runs
from .demo import add_demo_command
from .drive_bag import add_drive_command
from .play import add_play_command
from .record import add_record_command


def main(argv: Sequence[str] | None = None) -> int:
    return core_cli.main(argv, extensions=(add_bag_command, add_play_command, add_record_command, add_drive_command,
                                             add_demo_command))


if __name__ == "__main__":
    sys.exit(main())
