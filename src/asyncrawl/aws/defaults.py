"""Default business years for an event that names none (the old ``payload=None``).

The replaced crawler needed no years: it crawled "this year's" reports. The rule, in Korea
Standard Time (OpenDART's calendar):

- ``quarter``: the previous and the current business year. Q3 and the annual report of the
  previous year are still being filed in the first months of a year, and Q1/half-year of the
  current one from May on; two years cover every report that can have changed recently.
- ``annual``: the previous business year (an annual report covers a finished year; it is filed
  by the end of March).

Set ``CRAWL_YEARS`` (or ``years`` in the event) to crawl other years.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .ledger import KST

__all__ = ["default_years"]


def default_years(crawler_type: str, *, now: float | None = None) -> list[int]:
    """The years a ``crawler_type`` crawl covers when none are given, at ``now`` (epoch s)."""
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    year = moment.astimezone(KST).year
    if crawler_type == "quarter":
        return [year - 1, year]
    if crawler_type == "annual":
        return [year - 1]
    raise ValueError(f"crawler_type: {crawler_type!r} is not 'quarter' or 'annual'")
