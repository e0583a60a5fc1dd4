# netd: two commands do all set-up on a fresh machine with Python 3.11 and make.
#   make run    venv + install, then serve echo on 127.0.0.1:10007 in the foreground
#   make test   venv + install with test extras, then the whole suite (trial, then pytest)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?= --proto echo

# Debian tools the integration tests drive for real (command:package); installed when
# missing (the test machines run as root).
TOOLS  := systemd-socket-activate:systemd systemd-analyze:systemd openssl:openssl haproxy:haproxy xinetd:xinetd \
          gcc:gcc taskset:util-linux

.PHONY: run test unit integration lint clean tools test-adversarial robustness

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install whenever the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/twistd --nodaemon --pidfile= netd $(ARGS)

tools:
	@missing=""; for pair in $(TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The same files under both runners: trial first, pytest last (its summary closes the run).
test: $(VENV)/.installed tools
	$(BIN)/trial tests
	$(BIN)/pytest -q tests

unit: $(VENV)/.installed
	$(BIN)/pytest -q tests --ignore=tests/integration

integration: $(VENV)/.installed tools
	$(BIN)/pytest -q tests/integration

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests twisted benchmarks

clean:
	rm -rf $(VENV) _trial_temp .pytest_cache build dist twisted/plugins/dropin.cache benchmarks/build

# make bench: netd against its reference servers under the project's own harness
# (benchmarks/run.py, C load generator benchmarks/loadgen/loadgen.c, peers in
# benchmarks/peers/); writes BENCHMARKS.md, benchmarks/bench.png, benchmarks/results/.
# About 1 min per repetition of 1 s cases: REPS=5 DURATION=2 for figures worth quoting.
# make bench-smoke: the seconds-long pipeline check and load generator self-test (make test
# runs the same file). make profile-connrate: py-spy flame graph of netd under connrate.
REPS     ?= 3
DURATION ?= 1
BENCH_C  := benchmarks/build/loadgen benchmarks/build/cserver

.PHONY: bench bench-smoke profile-connrate

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

benchmarks/build/loadgen: benchmarks/loadgen/loadgen.c | tools
	mkdir -p $(@D) && gcc -O2 -Wall -o $@ $<

benchmarks/build/cserver: benchmarks/peers/cserver.c | tools
	mkdir -p $(@D) && gcc -O2 -Wall -o $@ $<

bench: $(VENV)/.installed $(VENV)/.bench-installed tools $(BENCH_C)
	NETD_BENCH_MAKE="make bench REPS=$(REPS) DURATION=$(DURATION)" \
	  $(BIN)/python benchmarks/run.py --reps $(REPS) --duration $(DURATION)

bench-smoke: $(VENV)/.installed tools $(BENCH_C)
	$(BIN)/trial tests.integration.test_bench_harness

profile-connrate: $(VENV)/.installed $(VENV)/.bench-installed tools $(BENCH_C)
	$(BIN)/python benchmarks/profile_connrate.py $(PROFILE_ARGS)

# make test-adversarial: the adversarial suite (tests/adversarial) at full size: floods of
# thousands of connections, 1 GiB streams, UDP reflection, full and failing disks, SIGKILL,
# broken reloads; ~4 min, root for the tmpfs/loop/raw-socket/netns scenarios. make test runs
# the same files at CI size. make robustness: the same scenarios, then docs/ROBUSTNESS.md
# from the figures they record (docs/robustness.py; --mode ci for the CI sizes).
test-adversarial: $(VENV)/.installed tools
	NETD_ADVERSARIAL=full $(BIN)/pytest -q tests/adversarial

robustness: $(VENV)/.installed tools
	$(BIN)/python docs/robustness.py
