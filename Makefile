# keras-edge — every target creates the environment it needs, so it works on a fresh clone.
PY          ?= python3
VENV        := .venv
VENV_DEVICE := .venv-device
BIN         := $(VENV)/bin
PIP_FLAGS   := -q --disable-pip-version-check
BUILD       := build

# make convert MODEL=model.keras CALIB=images/ OUT=bundles/name [EVAL=dir] [ARGS="--variants fp32,int8"]
MODEL ?=
CALIB ?=
OUT   ?= bundles/$(basename $(notdir $(MODEL)))
EVAL  ?=
ARGS  ?=

.PHONY: setup setup-device demo convert test test-host test-device clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e '.[host,device,dev]'
	touch $@

# The board's environment: the device extra only, no TensorFlow (proves the import rule).
$(VENV_DEVICE)/.installed: pyproject.toml
	test -x $(VENV_DEVICE)/bin/python || $(PY) -m venv $(VENV_DEVICE)
	$(VENV_DEVICE)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV_DEVICE)/bin/pip install $(PIP_FLAGS) '.[device]' pytest
	touch $@

setup: $(VENV)/.installed

setup-device: $(VENV_DEVICE)/.installed

demo: setup
	$(BIN)/python -m keras_edge.host.demo --workdir $(BUILD)/demo

convert: setup
	@test -n "$(MODEL)" || { echo "usage: make convert MODEL=model.keras CALIB=images/ [OUT=bundles/name] [EVAL=dir] [ARGS=...]"; exit 2; }
	@test -n "$(CALIB)" || { echo "usage: make convert MODEL=model.keras CALIB=images/ [OUT=bundles/name] [EVAL=dir] [ARGS=...]"; exit 2; }
	$(BIN)/keras-edge convert "$(MODEL)" -o "$(OUT)" --calib "$(CALIB)" $(if $(EVAL),--eval "$(EVAL)") $(ARGS)

test: test-host test-device

test-host: setup
	$(BIN)/python -m pytest -q tests/unit tests/e2e

test-device: setup setup-device
	$(BIN)/python -m keras_edge.host.demo --workdir $(BUILD)/test-fixtures --quiet --no-table
	KERAS_EDGE_FIXTURES=$(abspath $(BUILD)/test-fixtures) $(VENV_DEVICE)/bin/python -m pytest -q tests/device

clean:
	rm -rf $(BUILD) .pytest_cache
