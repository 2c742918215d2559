#!/usr/bin/env bash
# Install ROS 2's `launch` and `launch_ros` into a virtual environment that already has the ROS 2 wheels
# (tools/build_ros_into_venv.sh ran), so that launch/lane_seg.launch.py runs under the real launch_ros.
# They are not on PyPI: VENDOR holds the upstream sources (see its README.md). launch_ros imports
# composition_interfaces at import time, so its 3 services are built into the environment with CMake, as msg/ is.
# Usage: tools/install_launch_into_venv.sh VENV VENDOR
set -euo pipefail
venv=$(cd "$1" && pwd)
vendor=$(cd "$2" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"
build="$repo/build/ros-launch"
pip=("$py" -m pip install --disable-pip-version-check -q)

archives=(osrf_pycommon-2.1.6.tar.gz launch-3.7.1.tar.gz launch_ros-0.28.0.tar.gz composition_interfaces.tar.gz)
rm -rf "$build/src"
mkdir -p "$build/src"
for archive in "${archives[@]}"; do
  [[ -f "$vendor/$archive" ]] || { echo "$vendor/$archive is missing (expected: ${archives[*]})" >&2; exit 1; }
  tar -xzf "$vendor/$archive" -C "$build/src"
done

# Pure Python, no dependencies of their own to fetch: the ones they need are pinned in requirements-launch.txt.
"${pip[@]}" -r "$repo/requirements-launch.txt"
"${pip[@]}" --no-deps --no-build-isolation "$build/src/osrf_pycommon" "$build/src/launch/launch" \
  "$build/src/launch/launch_xml" "$build/src/launch/launch_yaml" "$build/src/launch_ros/launch_ros"

# composition_interfaces: the same CMake recipe as msg/ (the wheels' CMake files are already fixed by then).
# No build type: the services are only imported, so their typesupport libraries are compiled unoptimised (faster).
export AMENT_PREFIX_PATH="$venv"
ci="$build/composition_interfaces"
mkdir -p "$ci"
cmake -S "$build/src/rcl_interfaces/composition_interfaces" -B "$ci" -DCMAKE_PREFIX_PATH="$venv" \
      -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$py" > "$ci/configure.log" \
  || { cat "$ci/configure.log"; exit 1; }
cmake --build "$ci" -j 2 --target install > "$ci/build.log" || { tail -50 "$ci/build.log"; exit 1; }

"$py" -c 'import launch, launch_ros, composition_interfaces.srv
from launch.frontend.parse_substitution import parse_substitution
assert parse_substitution("$(env HOME)")  # launch imports `lark`: the one in the environment must do' \
  && echo "installed launch, launch_ros and composition_interfaces into $venv"
