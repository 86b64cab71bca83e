# Every target does its own set-up: a fresh clone needs nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow check mutate mutate-sample bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,aot]'
	touch $(STAMP)

# The kernels' entry points compiled ahead of time for this machine (twin/kernels/dispatch.py;
# ~15 s, needs the C compiler): processes then start without numba. Rebuilt when a kernel file
# changes; where it cannot be built the kernels run under numba's JIT, as before (the build
# says why, and make goes on).
AOT := twin/kernels/_aot.stamp
$(AOT): $(STAMP) $(addprefix twin/kernels/,hydraulics.py props.py thermal.py workload.py aot.py dispatch.py)
	-$(BIN)/python -m twin.kernels.aot

# twin's own modules compiled to bytecode: an environment with PYTHONDONTWRITEBYTECODE set
# (this one) otherwise compiles all ~12,000 lines again in every process, ~0.1 s of each
# command's and each check worker's start (docs/performance.md). A stale file is only
# ignored (Python checks the source's time and size), so an edit costs nothing but that.
PYC := $(VENV)/.bytecode
$(PYC): $(STAMP) $(shell find twin -name '*.py')
	$(BIN)/python -m compileall -q twin
	touch $(PYC)

run: $(STAMP) $(AOT) $(PYC)
	$(BIN)/twin run scenarios/reference-w32.toml -o results/reference-w32.h5

test: $(STAMP) $(AOT) $(PYC)
	$(BIN)/python -m pytest -q

# The slow tests (calibration fits, a sweep on separately started Dask processes; minutes): not part of `make test`, run by CI after it.
test-slow: $(STAMP) $(AOT) $(PYC)
	$(BIN)/python -m pytest -q -m slow

# Every runnable scenario of the catalogue against its limits and the committed baseline
# (.twin/baseline.toml, docs/check.md); exit 1 on a violation or a regression. JUnit report
# in results/margins.xml. 20-30 s on the shared two-core machine, numba cache warm.
check: $(STAMP) $(AOT) $(PYC)
	$(BIN)/twin check --junit results/margins.xml

# Plants physics errors one at a time and checks that the suite catches them
# (docs/mutation.md); not part of `make test`: it runs the suite once per mutation.
mutate: $(STAMP) $(AOT) $(PYC)
	$(BIN)/python benchmarks/mutate.py

# One mutation per module, each must be caught (~5 min): what CI runs after the tests.
mutate-sample: $(STAMP) $(AOT) $(PYC)
	$(BIN)/python benchmarks/mutate.py --sample

bench: $(STAMP) $(AOT) $(PYC)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_training_24h.py
	$(BIN)/python benchmarks/bench_row.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_check.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) results
