#!/usr/bin/env bash
# Build lane_seg's ROS 2 messages (msg/*.msg) with the PyPI ROS 2 wheels into a virtual environment, so that
# `from lane_seg.msg import LaneArray` works there. On a ROS 2 install use `colcon build` instead.
# Usage: tools/build_ros_into_venv.sh VENV
set -euo pipefail
venv=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"
build="$repo/build/ros"

# The wheels' exported CMake files name the include folders of the machine they were built on.
py_include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$("$py" -c 'import numpy; print(numpy.get_include())')
# (grep finds nothing once they are fixed: a rebuild must not stop there)
{ grep -l "/opt/python/cp3" "$venv"/share/*/cmake/*.cmake 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$py_include#g" \
         -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$np_include#g" "$f"
done

export AMENT_PREFIX_PATH="$venv"
mkdir -p "$build"
cmake -S "$repo" -B "$build" -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$py" -DLANE_SEG_INSTALL_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j 2 --target install > "$build/build.log" || { tail -50 "$build/build.log"; exit 1; }
"$py" -c 'from lane_seg.msg import Lane, LaneArray' && echo "built lane_seg/msg (Lane, LaneArray) into $venv"
