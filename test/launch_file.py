"""`ros2 launch FILE name:=value ...` without ros2cli: the file run by the real launch.LaunchService, as ros2launch does.

    python test/launch_file.py launch/lane_seg.launch.py image_topic:=/front/image_raw use_rviz:=false

The exit code is the launch's (0 after a clean shutdown, e.g. on SIGINT; 1 when the launch failed).
"""

from __future__ import annotations

import sys
from typing import Sequence

from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource


def main(argv: Sequence[str]) -> int:
    if not argv or any(":=" not in a for a in argv[1:]):
        print("usage: launch_file.py LAUNCH_FILE [name:=value ...]", file=sys.stderr)
        return 2
    path, arguments = argv[0], list(argv[1:])
    service = LaunchService(argv=arguments, noninteractive=True)
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        AnyLaunchDescriptionSource(path), launch_arguments=[tuple(a.split(":=", 1)) for a in arguments])]))
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
