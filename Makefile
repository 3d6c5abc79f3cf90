# Everything runs in a private virtualenv (.venv) that `make` creates on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py src/eventbus/_fast/*.pyx src/eventbus/_fast/*.pxd 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: install test test-compiled test-fallback demo broker bench chaos fuzz fuzz-install lint proto clean

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
FUZZ_SECONDS ?= 60

fuzz: fuzz-install
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

# atheris is the `fuzz` extra of pyproject.toml, installed alone so the package is not
# rebuilt; .ci/run skips fuzzing when this fails.
fuzz-install: install
	$(PY) -m pip install -q 'atheris>=2.3'

# mypy: src/eventbus, chaos and tests (pyproject's files), then bench in a run of its own.
lint: install
	$(VENV)/bin/ruff check src tests bench chaos fuzz
	$(VENV)/bin/ruff format --check src tests bench chaos fuzz
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench

proto: install
	$(PY) proto/generate.py

clean:
	rm -rf $(VENV) .fuzz build src/*.egg-info src/eventbus/_fast/*.c src/eventbus/_fast/*.so
