# Two entry points: `make demo` and `make test`. Both create (or reuse) .venv and install ctflows into it
# with the pinned versions of constraints.txt; a second run only re-installs when those files change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m ctflows.demo --out demo-output

# One pytest worker per core (at most 4): every test runs single-threaded (tests/conftest.py), and
# --dist loadfile keeps each file's module-scoped fixtures (trained models) on one worker, built once.
TEST_WORKERS ?= auto

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

clean:
	rm -rf $(VENV) demo-output
