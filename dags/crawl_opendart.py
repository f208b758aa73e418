"""Example Airflow DAGs: crawl OpenDART through the crawler Lambda, then the lake's next steps.

Runs on Airflow 2.10 (Amazon MWAA) and 3.x (``airflow.sdk`` where present). The workers need
``pip install asyncrawl`` (boto3 alone: the caller) and the Amazon provider, which MWAA ships.

``crawl_opendart``: ``l0_ingestion`` -> ``l0_crawler`` -> ``l1_transform``

- ``l0_ingestion`` invokes the function until its run is done (``invoke_until_done``: 206
  answers are followed with their continuation). The crawler's run id comes from Airflow's own
  run id (:func:`asyncrawl.aws.run_ids.crawler_run_id`): unique per DAG run, manual triggers
  included, and the same for every retry of that run, so a retry resumes it. To continue an
  earlier, unfinished run (a whole-market crawl spends one key-day of quota and continues on
  the next day), trigger with ``{"resume_run_id": "<its run id>"}``.
- ``l0_crawler`` is no Glue crawler: the stack's table over ``data/`` uses partition
  projection (deploy/template.yaml), so new partitions need no crawler and no MSCK REPAIR, and
  the schema cannot drift. The step keeps the pipeline's name and checks, with a deferrable
  Athena query, that this run's years are readable.
- ``l1_transform`` starts the Glue job that turns the rows into Parquet (deferrable).

``crawl_opendart_sharded``: the company list split into shards, one mapped ``l0_ingestion``
per shard. Every task that calls OpenDART runs in the pool ``opendart`` (create it once:
``airflow pools set opendart 4 "OpenDART: one key, one outgoing IP"``): its slots are the
shards that may run at once, which the rate was split for (README "Scaling out").
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.amazon.aws.operators.athena import AthenaOperator
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

try:  # Airflow 3
    from airflow.sdk import Param, dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task
    from airflow.models.param import Param

from asyncrawl.aws.caller import invoke_until_done
from asyncrawl.aws.run_ids import crawler_run_id

FUNCTION_NAME = "asyncrawl-opendart-crawler"
#: The function's timeout (deploy/template.yaml): every Airflow time below derives from it.
FUNCTION_TIMEOUT = timedelta(seconds=300)
#: Invocations one crawl may chain (206 after 206); 45 x 240 s is three hours of crawling.
MAX_INVOCATIONS = 45
POOL = "opendart"
COMPANIES_BUCKET = "my-data-bucket"
COMPANIES_KEY = "reference/companies.csv"
SHARD_SIZE = 500
GLUE_DATABASE = "opendart"
ATHENA_RESULTS = "s3://my-data-bucket/athena-results/"
GLUE_JOB = "opendart-rows-to-parquet"

DEFAULT_ARGS: dict[str, Any] = {
    # A task that chains invocations may take them all, each up to the function's timeout;
    # past that it FAILS (AirflowTaskTimeout) instead of hanging "running".
    "execution_timeout": FUNCTION_TIMEOUT * (MAX_INVOCATIONS + 1),
    # A retry waits a function timeout and a minute: an invocation whose answer was lost has
    # ended by then and released its lease, so the retry resumes the run instead of "busy".
    "retries": 2,
    "retry_delay": FUNCTION_TIMEOUT + timedelta(minutes=1),
}
PARAMS = {
    "resume_run_id": Param(
        None,
        type=["null", "string"],
        description="Continue this earlier, unfinished crawler run instead of a new one.",
    ),
    "years": Param([], type="array", description="Years to crawl; empty: the default years."),
}


def _run_id(dag_id: str, airflow_run_id: str, params: dict[str, Any]) -> str:
    resume = params.get("resume_run_id")
    return str(resume) if resume else crawler_run_id(dag_id, airflow_run_id)


def _event(run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"run_id": run_id}
    if params.get("years"):
        event["years"] = list(params["years"])
    return event


# The run's years (the param, else the default years), as the string partition values.
YEARS_SQL = (
    "{% set now = macros.datetime.now() %}"
    "{% for y in (params.years or [now.year - 1, now.year]) %}"
    "'{{ y }}'{{ ',' if not loop.last }}{% endfor %}"
)
# Built from this module's constants and Airflow's own template, never from user input.
CHECK_QUERY = (
    f"SELECT count(*) FROM {GLUE_DATABASE}.financial_statements "  # noqa: S608
    f"WHERE year IN ({YEARS_SQL})"
)


@dag(
    dag_id="crawl_opendart",
    schedule="0 4 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Seoul"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["opendart", "asyncrawl"],
)
def crawl_opendart() -> None:
    """All companies from the function's environment (COMPANIES_URI or Athena), one task."""

    @task(task_id="l0_ingestion", pool=POOL, multiple_outputs=False)
    def l0_ingestion(
        run_id: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Invoke the crawler until done; raises (failing the task) on any real error."""
        settings = params or {}
        crawl = _run_id("crawl_opendart", run_id or "", settings)
        body = invoke_until_done(
            FUNCTION_NAME, _event(crawl, settings), max_invocations=MAX_INVOCATIONS
        )
        result: dict[str, Any] = body["crawl_result"]
        return result

    check = AthenaOperator(
        task_id="l0_crawler",
        query=CHECK_QUERY,
        database=GLUE_DATABASE,
        output_location=ATHENA_RESULTS,
        deferrable=True,
    )
    transform = GlueJobOperator(
        task_id="l1_transform",
        job_name=GLUE_JOB,
        script_args={"--run_id": "{{ run_id }}"},
        wait_for_completion=True,
        deferrable=True,
    )
    l0_ingestion() >> check >> transform


@dag(
    dag_id="crawl_opendart_sharded",
    schedule="0 4 * * 6",
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Seoul"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["opendart", "asyncrawl"],
)
def crawl_opendart_sharded() -> None:
    """The company list in shards, one mapped task per shard, as many at once as the pool has."""

    @task
    def plan_shards(
        run_id: str | None = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """One Lambda event per ``SHARD_SIZE`` companies, each with its own stable run id."""
        import boto3  # only when the task runs: the scheduler parses this file often

        settings = params or {}
        crawl = _run_id("crawl_opendart_sharded", run_id or "", settings)
        body = boto3.client("s3").get_object(Bucket=COMPANIES_BUCKET, Key=COMPANIES_KEY)["Body"]
        rows = list(csv.DictReader(io.StringIO(body.read().decode("utf-8"))))
        companies = [{"corp_code": row["corp_code"]} for row in rows]
        return [
            {
                **_event(f"{crawl[:58]}-{start // SHARD_SIZE:04d}", settings),
                "companies": companies[start : start + SHARD_SIZE],
            }
            for start in range(0, len(companies), SHARD_SIZE)
        ]

    @task(task_id="l0_ingestion", pool=POOL, multiple_outputs=False)
    def crawl_shard(payload: dict[str, Any], tolerated_failed_items: int) -> dict[str, Any]:
        """Crawl one shard to the end."""
        body = invoke_until_done(
            FUNCTION_NAME,
            payload,
            max_invocations=MAX_INVOCATIONS,
            tolerated_failed_items=tolerated_failed_items,
        )
        result: dict[str, Any] = body["crawl_result"]
        return result

    @task(multiple_outputs=False)
    def report(results: list[dict[str, Any]]) -> dict[str, int]:
        """Totals over the shards, for the task log and XCom."""
        totals = {"planned": 0, "ok": 0, "no_data": 0, "failed": 0}
        for result in results:
            totals["planned"] += result["planned"]
            totals["ok"] += result["ok"]
            totals["no_data"] += result["no_data"]
            totals["failed"] += result.get("failed_count", len(result["failed"]))
        return totals

    summaries = crawl_shard.partial(tolerated_failed_items=5).expand(payload=plan_shards())
    report(summaries)


crawl_opendart()
crawl_opendart_sharded()
