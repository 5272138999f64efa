# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else must be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := build/demo

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fixtures.generate --out $(DEMO)
	$(BIN)/oligo inspect $(DEMO)

# pytest exits 5 when it collects no test: that fails the target, with a plain message.
# The store and service tests need PostgreSQL: scripts/ensure-postgres.sh starts (or installs) it.
test: $(STAMP)
	@scripts/ensure-postgres.sh
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

# Speed figures (not part of make test): ratios against baselines measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.sr_read

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
