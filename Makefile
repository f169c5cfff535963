# The two set-up commands of the README: `make run` (the demo pipeline) and `make test` (the test suite); for
# development, `make unit` (the unit tests only) and `make lint`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run grid expansion seeds test unit lint repro pull

# (Re)creates .venv and installs the project (torch/torchvision pinned in pyproject.toml) whenever
# pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

REPORT := results/report.html

# The default target `all` is the result tables, the report's figures and every per-shard artifact. The
# HTML report is rebuilt only when a figure or the summary is newer, so a second `make run` does nothing.
run: install
	$(BIN)/snakemake --cores all
	@if [ ! -f $(REPORT) ] || [ -n "$$(find results/report results/summary.txt -newer $(REPORT) -print -quit)" ]; then \
		$(BIN)/snakemake --report $(REPORT); fi
	@echo; echo "WSSS results (results/summary.txt; per class: results/miou.parquet):"; cat results/summary.txt
	@echo; echo "Report (open in a browser): $(CURDIR)/$(REPORT)"

# The experiments grid of config/demo-grid.yaml (README, "CAM methods and the experiments grid").
grid: install
	$(BIN)/snakemake --cores all --configfile config/demo-grid.yaml
	@echo; echo "Experiments (results/ranking.txt; every experiment's rows: results/miou.parquet):"; cat results/ranking.txt

# CAM expansion methods over seeds 0, 1, 2 (config/demo-expansion.yaml; README, "CAM methods and the experiments grid").
expansion: install
	$(BIN)/snakemake --cores all --configfile config/demo-expansion.yaml
	@echo; echo "Experiments (results/ranking.txt; every experiment's rows: results/miou.parquet):"; cat results/ranking.txt

# The demo replicated over three training seeds (config/demo-seeds.yaml): mean ± sd per stage.
seeds: install
	$(BIN)/snakemake --cores all --configfile config/demo-seeds.yaml
	@echo; echo "WSSS results over seeds (results/summary.txt; every seed's rows: results/miou.parquet):"; cat results/summary.txt

# One pytest-xdist worker per core, each test module in one worker (its module fixtures built once), in the
# order tests/conftest.py gives (the long workflow modules first); the projects that modules share are built
# once for all workers (tests/workflow/conftest.py, built_once). A plain `.venv/bin/python -m pytest ...` runs
# in one process, for debugging.
PYTEST := $(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

test: install
	$(PYTEST)

# The unit-test loop: tests/unit (tests/workflow holds the Snakemake runs, DVC and servers).
unit: install
	$(PYTEST) tests/unit

# ruff's rules and format (pyproject.toml, [tool.ruff]), the library's import layers ([tool.importlinter]),
# then Snakemake's own lint of the workflow.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/snakemake --lint

# DVC (see README, "Share and reuse results"). The dvc.yaml stages call snakemake: the venv goes on PATH.
repro: | $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro $(ARGS)

# dvc pull (ARGS: stages or paths, e.g. ARGS="data pseudo_masks"), then check what arrived against
# dvc.lock and let Snakemake mark the verified stages up to date (mismatches are removed and reported).
pull: | $(STAMP)
	$(BIN)/dvc pull $(ARGS) || echo "dvc pull did not fetch everything; restoring what it fetched"
	$(BIN)/python -m wsss.pipeline.dvc_pull
