"""Example Airflow DAG: crawl OpenDART through the crawler Lambda without hanging.

Needs Airflow 2.4+ (TaskFlow, dynamic task mapping) and, on the workers, the ``asyncrawl``
package with boto3 alone: ``asyncrawl.aws.caller`` imports neither aiohttp nor aioboto3. See
docs/CALLING-FROM-AIRFLOW.md for why the call is made this way.

Two shapes:

- ``crawl_opendart``: one task, one line. The Lambda answers 206 with a continuation whenever
  its budget (well under the NAT's 350 s idle limit) is spent; ``invoke_until_done`` re-invokes
  until the run is done and returns the merged summary.
- ``crawl_opendart_sharded``: past one function's reach (thousands of companies), split the
  company list into shards and map one task over them with ``.partial().expand()``, at most
  ``MAX_PARALLEL_SHARDS`` at a time. Give each running shard its share of the rate budget
  through the function's ``RATE`` (e.g. 900/1m over 4 shards: ``RATE=225/1m,4500/1d``).
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import boto3
import pendulum
from airflow.decorators import dag, task

from asyncrawl.aws.caller import invoke_until_done

FUNCTION_NAME = "opendart-crawler"
YEARS = [2023, 2024]
COMPANIES_BUCKET = "my-data-bucket"
COMPANIES_KEY = "reference/companies.csv"
SHARD_SIZE = 500
MAX_PARALLEL_SHARDS = 4

DEFAULT_ARGS = {
    # A stable run_id per logical date (below) makes an Airflow retry resume the run: items
    # already finished are not crawled again.
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    # A real limit that FAILS the task (AirflowTaskTimeout); a task stuck "running" is the
    # hang this caller removes, not a too-short timeout.
    "execution_timeout": timedelta(hours=3),
}


@dag(
    schedule="0 4 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Seoul"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["opendart", "asyncrawl"],
)
def crawl_opendart() -> None:
    """All companies from the function's environment (``COMPANIES_URI``), one task."""

    # multiple_outputs=False: keep the summary one XCom value, not one per key.
    @task(multiple_outputs=False)
    def crawl(ds_nodash: str | None = None) -> dict[str, Any]:
        """Invoke the crawler until done; raises (failing the task) on any real error."""
        payload = {"years": YEARS, "run_id": f"opendart-{ds_nodash}"}
        return invoke_until_done(FUNCTION_NAME, payload)["crawl_result"]

    crawl()


@dag(
    schedule="0 4 * * 6",
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Seoul"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["opendart", "asyncrawl"],
)
def crawl_opendart_sharded() -> None:
    """The company list in shards, one mapped task per shard, a few at a time."""

    @task
    def plan_shards(ds_nodash: str | None = None) -> list[dict[str, Any]]:
        """One Lambda event per ``SHARD_SIZE`` companies, each with its own stable run id."""
        body = boto3.client("s3").get_object(Bucket=COMPANIES_BUCKET, Key=COMPANIES_KEY)["Body"]
        rows = list(csv.DictReader(io.StringIO(body.read().decode("utf-8"))))
        companies = [{"corp_code": row["corp_code"]} for row in rows]
        return [
            {
                "companies": companies[start : start + SHARD_SIZE],
                "years": YEARS,
                "run_id": f"opendart-{ds_nodash}-{start // SHARD_SIZE:04d}",
            }
            for start in range(0, len(companies), SHARD_SIZE)
        ]

    @task(max_active_tis_per_dag=MAX_PARALLEL_SHARDS, multiple_outputs=False)
    def crawl_shard(payload: dict[str, Any], tolerated_failed_items: int) -> dict[str, Any]:
        """Crawl one shard to the end."""
        return invoke_until_done(
            FUNCTION_NAME, payload, tolerated_failed_items=tolerated_failed_items
        )["crawl_result"]

    @task(multiple_outputs=False)
    def report(results: list[dict[str, Any]]) -> dict[str, int]:
        """Totals over the shards, for the task log and XCom."""
        totals = {"planned": 0, "ok": 0, "no_data": 0, "failed": 0}
        for result in results:
            totals["planned"] += result["planned"]
            totals["ok"] += result["ok"]
            totals["no_data"] += result["no_data"]
            totals["failed"] += len(result["failed"])
        return totals

    summaries = crawl_shard.partial(tolerated_failed_items=5).expand(payload=plan_shards())
    report(summaries)


crawl_opendart()
crawl_opendart_sharded()
