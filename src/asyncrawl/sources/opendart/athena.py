"""The company list from Athena: the data lake's own table, as the one-by-one crawler read it.

Settings (the Lambda's environment; the CLI form is ``--companies athena://DATABASE/TABLE``,
with the workgroup and output location from the same environment variables):

- ``ATHENA_DATABASE`` and ``ATHENA_TABLE``: run the old crawler's query on that table::

      SELECT dart_corp,
             LPAD(CAST(dart_corp_code AS VARCHAR), 8, '0') AS dart_corp_code,
             stock_nm,
             LPAD(CAST(stock_code AS VARCHAR), 6, '0') AS stock_code
      FROM "DATABASE"."TABLE"
      WHERE dart_corp_code IS NOT NULL
      GROUP BY dart_corp, dart_corp_code, stock_nm, stock_code
      ORDER BY dart_corp

- ``ATHENA_QUERY``: a whole query instead (its columns named as a company list's are, see
  below; ``ATHENA_DATABASE`` is then only the query's default database).
- ``ATHENA_WORKGROUP`` (default ``primary``) and ``ATHENA_OUTPUT`` (``s3://bucket/prefix/``,
  needed unless the workgroup sets its own result location).
- ``ATHENA_MAX_WAIT_SECONDS`` (default 60): how long the Lambda waits for the query, well
  inside its 240 s budget; the company list of the old crawler's table answers in seconds.

In the Lambda, :func:`athena_company_hook` is one of the OpenDART job's company-list hooks
(``asyncrawl.jobs.opendart.COMPANY_LIST_HOOKS``): a payload-less event with no
``COMPANIES_URI`` crawls every company the query returns.

The rows are read exactly as a CSV company list is (:func:`asyncrawl.sources.opendart.companies.
parse_companies`): the same column names (``corp_code`` or ``dart_corp_code``; ``stock_code``,
else ``stock_nm``; ``corp_name`` or ``dart_corp``), the same padding of codes that lost their
zeros, duplicates dropped, and every bad row reported at once; "line N" is the Nth row of the
query's result (not counting its header).

The query is polled with a growing interval (0.2 s up to 2 s) and never past ``deadline`` (the
invocation's budget, on the event loop's clock): at the deadline the query is stopped and
:class:`AthenaQueryError` says so. Results are read page by page (``NextToken``, 1,000 rows a
page). aioboto3 is imported when a query runs, so importing this module costs nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import AsyncrawlError, ConfigError
from .companies import parse_companies
from .items import Company

if TYPE_CHECKING:
    from ...sinks.base import BlobStore

__all__ = [
    "OLD_CRAWLER_QUERY",
    "AthenaCompanyQuery",
    "AthenaQueryError",
    "athena_company_hook",
    "load_athena_companies",
]

#: The replaced crawler's query; ``{database}`` and ``{table}`` are quoted identifiers.
OLD_CRAWLER_QUERY = """SELECT dart_corp,
       LPAD(CAST(dart_corp_code AS VARCHAR), 8, '0') AS dart_corp_code,
       stock_nm,
       LPAD(CAST(stock_code AS VARCHAR), 6, '0') AS stock_code
FROM "{database}"."{table}"
WHERE dart_corp_code IS NOT NULL
GROUP BY dart_corp, dart_corp_code, stock_nm, stock_code
ORDER BY dart_corp"""

_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,254}")
_FIRST_POLL_S = 0.2
_LONGEST_POLL_S = 2.0
_PAGE_ROWS = 1000
_DEFAULT_WAIT_S = 60.0


class AthenaQueryError(AsyncrawlError):
    """The company-list query failed, was cancelled, or did not finish within the budget."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AthenaCompanyQuery:
    """Where the company list comes from: a table (the old query) or a whole query."""

    database: str | None = None
    table: str | None = None
    query: str | None = None
    workgroup: str = "primary"
    output: str | None = None

    def __post_init__(self) -> None:
        if self.query is None and (self.database is None or self.table is None):
            raise ConfigError(
                "ATHENA_TABLE", "set ATHENA_DATABASE and ATHENA_TABLE, or a whole ATHENA_QUERY"
            )
        for field, value in (("ATHENA_DATABASE", self.database), ("ATHENA_TABLE", self.table)):
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise ConfigError(field, f"{value!r} is not a Glue name (letters, digits, _ and -)")
        if self.output is not None and not self.output.startswith("s3://"):
            raise ConfigError("ATHENA_OUTPUT", f"{self.output!r} must be an s3:// location")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AthenaCompanyQuery | None:
        """The query the environment describes, or None when it names no table and no query."""

        def get(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        if get("ATHENA_QUERY") is None and get("ATHENA_TABLE") is None:
            return None
        return cls(
            database=get("ATHENA_DATABASE"),
            table=get("ATHENA_TABLE"),
            query=get("ATHENA_QUERY"),
            workgroup=get("ATHENA_WORKGROUP") or "primary",
            output=get("ATHENA_OUTPUT"),
        )

    @classmethod
    def from_uri(cls, uri: str, environ: Mapping[str, str]) -> AthenaCompanyQuery:
        """``athena://DATABASE/TABLE``, the workgroup and output location from ``environ``."""
        match = re.fullmatch(r"athena://([^/]+)/([^/]+)/?", uri)
        if match is None:
            raise ConfigError("--companies", f"{uri!r}: write an Athena table as athena://db/table")
        return cls(
            database=match.group(1),
            table=match.group(2),
            workgroup=environ.get("ATHENA_WORKGROUP", "").strip() or "primary",
            output=environ.get("ATHENA_OUTPUT", "").strip() or None,
        )

    @property
    def name(self) -> str:
        """How messages name this list: ``athena://db/table`` or ``athena query``."""
        if self.query is None:
            return f"athena://{self.database}/{self.table}"
        return "ATHENA_QUERY"

    def sql(self) -> str:
        """The SQL that runs: ``query``, or the old crawler's query on ``database.table``."""
        if self.query is not None:
            return self.query
        return OLD_CRAWLER_QUERY.format(database=self.database, table=self.table)


async def load_athena_companies(
    source: AthenaCompanyQuery,
    *,
    deadline: float | None = None,
    client: Any = None,
) -> list[Company]:
    """Run ``source``'s query and read its rows as a company list.

    ``deadline`` is a time on the running loop's clock (``loop.time()``) by which the query
    must have finished; ``client`` an open aiobotocore Athena client (default: one from
    aioboto3 following boto3's settings, e.g. ``AWS_ENDPOINT_URL_ATHENA``). Raises
    :class:`AthenaQueryError` when the query fails, is cancelled or outlives the deadline, and
    the company list's :class:`~asyncrawl.errors.InputError` for bad rows.
    """
    if client is None:
        import aioboto3  # only the Athena path needs it

        async with aioboto3.Session().client("athena") as own:
            return await load_athena_companies(source, deadline=deadline, client=own)
    try:
        query_id = await _start(source, client)
        await _wait(source, client, query_id, deadline)
        rows = await _rows(client, query_id)
    except AthenaQueryError:
        raise
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code is None:
            raise
        # AccessDenied, InvalidRequestException...: Athena's own words name the fix.
        raise AthenaQueryError(
            f"{source.name}: Athena refused the company-list query: {error}"
        ) from error
    # As JSON Lines, so "line N" in an error is the query result's Nth row.
    lines = b"\n".join(orjson.dumps(row) for row in rows)
    return await asyncio.to_thread(parse_companies, lines, name=f"{source.name}.jsonl")


async def _start(source: AthenaCompanyQuery, client: Any) -> str:
    request: dict[str, Any] = {"QueryString": source.sql(), "WorkGroup": source.workgroup}
    if source.database is not None:
        request["QueryExecutionContext"] = {"Database": source.database}
    if source.output is not None:
        request["ResultConfiguration"] = {"OutputLocation": source.output}
    answer = await client.start_query_execution(**request)
    return str(answer["QueryExecutionId"])


async def _wait(
    source: AthenaCompanyQuery, client: Any, query_id: str, deadline: float | None
) -> None:
    loop = asyncio.get_running_loop()
    interval = _FIRST_POLL_S
    while True:
        answer = await client.get_query_execution(QueryExecutionId=query_id)
        status = answer["QueryExecution"]["Status"]
        state = status.get("State")
        if state == "SUCCEEDED":
            return
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason") or "no reason given"
            raise AthenaQueryError(
                f"{source.name}: the company-list query {query_id} {state.lower()}: {reason}"
            )
        now = loop.time()
        if deadline is not None and now + interval > deadline:
            await client.stop_query_execution(QueryExecutionId=query_id)
            raise AthenaQueryError(
                f"{source.name}: the company-list query {query_id} did not finish within the "
                "invocation's budget and was stopped; make the query cheaper or raise "
                "MAX_SYNC_SECONDS"
            )
        await asyncio.sleep(interval)
        interval = min(interval * 2, _LONGEST_POLL_S)


async def _rows(client: Any, query_id: str) -> list[dict[str, str | None]]:
    rows: list[dict[str, str | None]] = []
    columns: list[str] | None = None
    token: str | None = None
    while True:
        request: dict[str, Any] = {"QueryExecutionId": query_id, "MaxResults": _PAGE_ROWS}
        if token is not None:
            request["NextToken"] = token
        page = await client.get_query_results(**request)
        result = page["ResultSet"]
        raw = [[cell.get("VarCharValue") for cell in row["Data"]] for row in result["Rows"]]
        if columns is None:
            info = result.get("ResultSetMetadata", {}).get("ColumnInfo") or []
            columns = [str(column["Name"]) for column in info]
            # A SELECT's first result row repeats the column names.
            if raw and (not columns or raw[0] == columns):
                columns = [str(name) for name in raw[0]]
                raw = raw[1:]
        rows.extend(dict(zip(columns, values, strict=False)) for values in raw)
        token = page.get("NextToken")
        if not token:
            return rows


async def athena_company_hook(environ: Mapping[str, str], store: BlobStore) -> list[Company] | None:
    """The OpenDART job's company-list hook: the Athena list when the environment sets one up.

    Returns None when neither ``ATHENA_TABLE`` nor ``ATHENA_QUERY`` is set (another source may
    then be asked); waits at most ``ATHENA_MAX_WAIT_SECONDS`` (default 60) for the query.
    """
    source = AthenaCompanyQuery.from_env(environ)
    if source is None:
        return None
    text = environ.get("ATHENA_MAX_WAIT_SECONDS", "").strip()
    try:
        wait = float(text) if text else _DEFAULT_WAIT_S
    except ValueError:
        wait = -1.0
    if not 0 < wait <= 900:
        raise ConfigError("ATHENA_MAX_WAIT_SECONDS", f"{text!r}: give seconds, e.g. 60")
    deadline = asyncio.get_running_loop().time() + wait
    return await load_athena_companies(source, deadline=deadline)
