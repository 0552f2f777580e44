# One entry point for set-up, tests, the demo and the benchmarks.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TF_KERAS := tf-keras==2.21.0
# Test processes (pytest-xdist); each test file runs in one of them, so module fixtures run once.
# Three on two cores: while one process traces a model in Python, the others compute.
PYTEST_WORKERS ?= 3

.PHONY: install test lint demo bench clean

$(STAMP): requirements/base.txt requirements/cpu.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements/cpu.txt -r requirements/dev.txt
	$(PIP) install -q --no-deps $(TF_KERAS)
	$(PIP) install -q --no-deps -e .
	# The optional inference engines, so that their tests run rather than skip.
	$(PIP) install -q -e ".[onnx,openvino]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/vermin --target=3.7- --violations --no-tips --eval-annotations \
		densenet3d_keras generators callbacks tests benchmarks tools *.py
	$(VENV)/bin/lint-imports --no-cache
	$(PY) tools/check_structure.py
	$(PY) tools/check_tf115.py
	$(PY) tools/check_npu_bridge.py
	$(PY) tools/check_ascend_requirements.py
	$(PY) tools/check_dependency_minimums.py

test: lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests

demo: $(STAMP)
	$(PY) train_keras.py --demo
	$(PY) predict_keras.py --demo

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
