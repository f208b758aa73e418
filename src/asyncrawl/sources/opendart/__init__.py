"""OpenDART (Korea's electronic disclosure system): financial statements of listed companies.

- :mod:`.items`: :class:`Company`, :class:`StatementItem` and :func:`plan_items`.
- :mod:`.source`: :class:`OpenDartSource`, which reads OpenDART's answers into outcomes.
- :mod:`.companies`: company lists (CSV, JSON, JSON Lines; local files or S3).
- :mod:`.corpcode`: every company OpenDART knows, from ``corpCode.xml``.
- :mod:`.layout`: where an item's rows are stored.
"""

from __future__ import annotations

from .companies import (
    CompanyListError,
    CompanyRow,
    RowProblem,
    load_companies,
    parse_companies,
    read_company_rows,
    resolve_companies,
)
from .corpcode import OpenDartError, fetch_corp_codes, parse_corp_code_zip
from .items import (
    FS_DIVS,
    REPORT_CODES,
    Company,
    StatementItem,
    item_from_key,
    plan_items,
)
from .layout import DATA_PREFIX, data_key
from .source import (
    DEFAULT_BASE_URL,
    FATAL_STATUSES,
    REFUSED_STATUSES,
    OpenDartSource,
    check_api_key,
)

__all__ = [
    "DATA_PREFIX",
    "DEFAULT_BASE_URL",
    "FATAL_STATUSES",
    "FS_DIVS",
    "REFUSED_STATUSES",
    "REPORT_CODES",
    "Company",
    "CompanyListError",
    "CompanyRow",
    "OpenDartError",
    "OpenDartSource",
    "RowProblem",
    "StatementItem",
    "check_api_key",
    "data_key",
    "fetch_corp_codes",
    "item_from_key",
    "load_companies",
    "parse_companies",
    "parse_corp_code_zip",
    "plan_items",
    "read_company_rows",
    "resolve_companies",
]
