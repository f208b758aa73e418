"""Airflow run ids -> crawler run ids: valid, stable per DAG run, distinct between DAG runs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asyncrawl.aws.run_ids import RUN_ID_PATTERN, crawler_run_id


def test_airflow_run_ids_map_to_valid_stable_ids() -> None:
    manual = crawler_run_id("crawl_opendart", "manual__2024-06-01T04:00:00.123456+00:00")
    assert RUN_ID_PATTERN.fullmatch(manual)
    assert manual.startswith("crawl_opendart-manual__2024-06-01T04-00-00.123456-00-00-")
    assert manual == crawler_run_id("crawl_opendart", "manual__2024-06-01T04:00:00.123456+00:00")
    # A valid id is kept as it is, so a user can name a run to resume.
    assert crawler_run_id("", "opendart-quarter-2024-06-01") == "opendart-quarter-2024-06-01"


def test_ids_that_differ_only_in_replaced_characters_stay_distinct() -> None:
    plus = crawler_run_id("d", "manual__2024-06-01T04:00:00+00:00")
    minus = crawler_run_id("d", "manual__2024-06-01T04:00:00-00:00")
    assert plus != minus
    assert crawler_run_id("a", "x") != crawler_run_id("b", "x")


@given(st.text(min_size=1, max_size=300), st.text(max_size=80))
def test_every_run_id_maps_into_the_contract(run_id: str, prefix: str) -> None:
    mapped = crawler_run_id(prefix, run_id)
    assert RUN_ID_PATTERN.fullmatch(mapped)
    assert mapped == crawler_run_id(prefix, run_id)
