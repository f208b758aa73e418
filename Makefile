# Two commands a new user runs on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself: the crawler, the command line and the
# test tools (`.[crawler,cli,dev]`; a plain `pip install asyncrawl` is the boto3-only caller).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Lambda function's architecture: arm64 (Graviton, cheaper) or x86_64.
ARCH ?= arm64
STACK ?= asyncrawl-opendart
# Airflow versions the DAG-import check installs into their own cached virtual environments.
AIRFLOW_CACHE ?= $(HOME)/.cache/asyncrawl-ci

.PHONY: demo test lint typecheck unit bench benchmark package package-all lock deploy airflow-check clean

# The crawler's dependencies at the versions the Lambda package ships (requirements/lambda.lock),
# so the tests run what the function runs.
$(STAMP): pyproject.toml requirements/lambda.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[crawler,cli,dev]' -c requirements/lambda.lock
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/asyncrawl demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks lambda_handler.py examples dags
	$(BIN)/ruff format --check src tests benchmarks lambda_handler.py examples dags
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
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[cli]' -r benchmarks/requirements.txt
	touch $@

benchmark: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.run $(if $(QUICK),--quick) $(BENCH_ARGS)

# The Lambda zip for $(ARCH): dist/lambda/asyncrawl-lambda-py3.13-$(ARCH).zip
package: $(STAMP)
	$(BIN)/python -m asyncrawl.aws.package --out dist/lambda --arch $(ARCH)

package-all: $(STAMP)
	$(BIN)/python -m asyncrawl.aws.package --out dist/lambda --arch arm64
	$(BIN)/python -m asyncrawl.aws.package --out dist/lambda --arch x86_64

# Regenerate the lock file the package build installs (after changing the crawler's deps).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra crawler --universal --python-version 3.13 \
		--no-header --quiet -o requirements/lambda.lock

# Build for $(ARCH) and deploy deploy/template.yaml with the AWS SAM CLI (`sam`, installed
# separately); the first time it asks for the parameters (--guided) and saves them.
deploy: package
	cp dist/lambda/asyncrawl-lambda-py3.13-$(ARCH).zip dist/lambda/asyncrawl-lambda.zip
	sam deploy --template-file deploy/template.yaml --stack-name $(STACK) --resolve-s3 \
		--capabilities CAPABILITY_IAM --parameter-overrides Architecture=$(ARCH) $(DEPLOY_ARGS)

# DAG-import check on pinned Airflow 2.10 and 3.x, each in its own cached virtual environment.
airflow-check:
	$(PYTHON) .ci/airflow_check.py --cache $(AIRFLOW_CACHE)

clean:
	rm -rf $(VENV) dist build .mypy_cache .pytest_cache .ruff_cache
