# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else must be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := build/demo

.PHONY: demo test bench fuzz load clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo: SRs of a patient with oligoprogression inside a RECIST partial response (and a second
# patient with polyprogression), then `oligo report`: where the Bundle and the plot are, and the conclusion.
demo: $(STAMP)
	@rm -rf $(DEMO)
	@$(BIN)/python -m fixtures.generate --out $(DEMO) > /dev/null
	@echo "demo SRs written to $(DEMO)/DEMO-OLIGO-1 and $(DEMO)/DEMO-POLY-2"
	@$(BIN)/oligo report $(DEMO)/DEMO-OLIGO-1 -o $(DEMO)/report/bundle.json --plot $(DEMO)/report/spider.png
	@$(BIN)/oligo report $(DEMO)/DEMO-POLY-2 -o $(DEMO)/report/bundle-poly.json --plot $(DEMO)/report/spider-poly.png
	@echo "storing the demo SRs in the embedded store ($(DEMO)/oligo.db, SQLite):"
	@$(BIN)/oligo ingest $(DEMO)/DEMO-OLIGO-1 $(DEMO)/DEMO-POLY-2 --database $(DEMO)/oligo.db
	@$(BIN)/oligo assess --database $(DEMO)/oligo.db --patient DEMO-OLIGO-1

# pytest exits 5 when it collects no test: that fails the target, with a plain message.
# The store and service tests need PostgreSQL: scripts/ensure-postgres.sh starts (or installs) it.
# The listener and Orthanc tests need DCMTK and Orthanc: scripts/ensure-dicom-tools.sh installs them.
# The EHR tests need Node.js, the test FHIR server's npm packages and the mCODE package:
# scripts/ensure-fhir-server.sh installs them (tests/fhir_server/node_modules, cached).
test: $(STAMP)
	@scripts/ensure-postgres.sh
	@scripts/ensure-dicom-tools.sh
	@scripts/ensure-fhir-server.sh
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc
	@scripts/audit.sh

# The long fuzz run (not part of make test): FUZZ_SCALE times the examples of make test, a fresh random
# seed each run; bounded by FUZZ_SECONDS. A failure prints the input that broke it.
FUZZ_SCALE ?= 50
FUZZ_SECONDS ?= 3600
fuzz: $(STAMP)
	OLIGO_FUZZ_SCALE=$(FUZZ_SCALE) OLIGO_FUZZ_RANDOM=1 timeout $(FUZZ_SECONDS) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz_sr.py tests/test_fuzz_fhir.py tests/test_fuzz_http.py

# The loopback load run (not part of make test): LOAD_REQUESTS mixed requests from LOAD_CLIENTS clients
# against `oligo serve` on 127.0.0.1, LOAD_DATABASE sqlite or postgresql; prints latency percentiles.
LOAD_REQUESTS ?= 10000
LOAD_CLIENTS ?= 8
LOAD_DATABASE ?= sqlite
load: $(STAMP)
	@scripts/ensure-postgres.sh
	$(BIN)/python -m benchmarks.load --requests $(LOAD_REQUESTS) --clients $(LOAD_CLIENTS) --database $(LOAD_DATABASE)

# Speed figures (not part of make test): ratios against baselines measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis tests/fhir_server/node_modules tests/fhir_server/packages
