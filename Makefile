# The two commands of the README: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: dev test install bench clean build-SharedLayer

$(BIN)/funnel: pyproject.toml setup.py devtools/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Funnel needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./devtools
	@touch $@

# checkov (tests/infrastructure/test_scanners.py) pins boto3 and packaging versions the product cannot share,
# so it gets a virtualenv of its own.
SCAN := .venv-scan
$(SCAN)/bin/checkov:
	$(PYTHON) -m venv $(SCAN)
	$(SCAN)/bin/pip install -q --upgrade pip
	$(SCAN)/bin/pip install -q 'checkov>=3.3,<4'

install: $(BIN)/funnel $(SCAN)/bin/checkov

dev: install
	bash scripts/install-system-deps.sh postgresql
	$(BIN)/funnel dev

test: install
	bash scripts/install-system-deps.sh postgresql chromium wordpress walkthrough node
	@# the TypeScript client check's packages (tests/contract/typescript), when missing or older than the lockfile
	@[ tests/contract/typescript/node_modules/.package-lock.json -nt tests/contract/typescript/package-lock.json ] \
	  || npm ci --prefix tests/contract/typescript --no-audit --no-fund
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q

bench: install
	bash scripts/install-system-deps.sh postgresql chromium wordpress
	@# community_bench.py only runs the community_*_bench.py parts one after another
	@for b in benchmarks/*_bench.py; do [ $$b = benchmarks/community_bench.py ] && continue; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

# `sam build` runs this for SharedLayer (template.yaml: ContentUri ./, BuildMethod: makefile): the
# product package alone (shared/funnel with its data, migrations/ as funnel.migrations) into the
# layer's python/; its dependencies are the Deps layers', funnel-dev is not part of it.
build-SharedLayer:
	rm -rf build  # setuptools packs whatever its build/ holds: never a stale module
	$(PYTHON) -m pip install --quiet --no-deps --no-compile --target "$(ARTIFACTS_DIR)/python" .
	rm -rf "$(ARTIFACTS_DIR)/python/bin"

clean:
	rm -rf $(VENV) $(SCAN) .funnel .pytest-tmp
