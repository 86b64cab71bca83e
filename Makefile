# Every target does its own set-up: a fresh clone needs nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow check mutate mutate-sample bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/twin run scenarios/reference-w32.toml -o results/reference-w32.h5

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The slow tests (calibration fits, a sweep on separately started Dask processes; minutes): not part of `make test`, run by CI after it.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Every runnable scenario of the catalogue against its limits and the committed baseline
# (.twin/baseline.toml, docs/check.md); exit 1 on a violation or a regression. JUnit report
# in results/margins.xml. 20-30 s on the shared two-core machine, numba cache warm.
check: $(STAMP)
	$(BIN)/twin check --junit results/margins.xml

# Plants physics errors one at a time and checks that the suite catches them
# (docs/mutation.md); not part of `make test`: it runs the suite once per mutation.
mutate: $(STAMP)
	$(BIN)/python benchmarks/mutate.py

# One mutation per module, each must be caught (~5 min): what CI runs after the tests.
mutate-sample: $(STAMP)
	$(BIN)/python benchmarks/mutate.py --sample

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_training_24h.py
	$(BIN)/python benchmarks/bench_row.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_check.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) results
