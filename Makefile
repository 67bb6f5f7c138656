# Two commands on a fresh machine:  make demo  (the offline demo, end to end)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
TEST_WORKERS ?= 2

.PHONY: setup demo test lint format clean-demo

# torch first, pinned: an unpinned torch pulled in by another package is a multi-GB CUDA build.
$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/snakemake

demo: setup
	$(BIN)/snakemake --configfile demo/config.yaml --cores $(CORES)

# everything the demo wrote, so the next `make demo` runs from scratch
clean-demo:
	rm -rf results logs resources .snakemake

# Two workers: most tests wait on a subprocess (snakemake, a worker) with one core idle. One file per
# worker (loadfile): the tests that share the e2e run's fixture sit in one module.
test: setup
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/ruff format --check src tests workflow benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --configfile demo/config.yaml
