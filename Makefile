# Two commands a new user runs on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench benchmark package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,caller]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/asyncrawl demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks lambda_handler.py examples
	$(BIN)/ruff format --check src tests benchmarks lambda_handler.py examples
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_overhead.py

# The full benchmark suite (issue 10): peers (Scrapy, Crawlee, aiometer) and matplotlib go into
# their own venv, never into .venv. `make benchmark QUICK=1` is the < 2 minute version.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $@

benchmark: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.run $(if $(QUICK),--quick) $(BENCH_ARGS)

package: $(STAMP)
	$(BIN)/python -m asyncrawl.aws.package --out dist/lambda

clean:
	rm -rf $(VENV) dist build .mypy_cache .pytest_cache .ruff_cache
