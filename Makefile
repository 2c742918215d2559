# Two commands for a new user: `make demo` and `make test`. Both create or reuse .venv/ and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
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

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) training/demo.py --out $(DEMO_DIR) $(if $(TRAIN),--train) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))

# How the built-in checkpoint was made (hours on 2 CPU cores; see README).
builtin-model: $(STAMP)
	bash training/train_builtin.sh

clean:
	rm -rf out runs
