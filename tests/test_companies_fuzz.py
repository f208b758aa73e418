"""Hypothesis fuzzing of company lists: any bytes are a list of companies or an InputError.

Whatever a user passes as ``--companies`` (or puts in ``COMPANIES_URI``), the reader answers
with companies or with an error that names the file, the line and the fix (exit 2 / 400):
never a traceback (a RecursionError from deep JSON, a UnicodeDecodeError, an IndexError).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrawl.errors import InputError
from asyncrawl.sources.opendart.companies import parse_companies
from asyncrawl.sources.opendart.items import Company

NAMES = ("companies.csv", "companies.json", "companies.jsonl")

# Cells that look like the real thing, and some that do not.
CELLS = st.one_of(
    st.from_regex(r"[0-9]{1,8}", fullmatch=True),
    st.from_regex(r"[0-9A-Z]{6}", fullmatch=True),
    st.text(max_size=12),
    st.sampled_from(["", '"', '""', ",", "\n", "\r\n", "삼성전자", "\ufeff"]),
)
HEADERS = st.lists(
    st.sampled_from(
        ["corp_code", "dart_corp_code", "stock_code", "stock_nm", "corp_name", "dart_corp", "x"]
    ),
    min_size=1,
    max_size=4,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


def _outcome(data: bytes | str, name: str) -> list[Company] | InputError:
    try:
        return parse_companies(data, name=name)
    except InputError as error:
        problem = error
    assert str(problem)  # a message the user can act on
    return problem


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), name=st.sampled_from(NAMES))
def test_any_bytes_are_companies_or_an_input_error(data: bytes, name: str) -> None:
    _outcome(data, name)


@settings(max_examples=300, deadline=None)
@given(
    header=HEADERS,
    rows=st.lists(st.lists(CELLS, max_size=5), max_size=6),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp949", "utf-16"]),
)
def test_csv_like_text_is_companies_or_an_input_error(
    header: list[str], rows: list[list[str]], encoding: str
) -> None:
    text = "\n".join(",".join(cells) for cells in [header, *rows])
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return  # not representable in that encoding: nothing a user could have saved
    result = _outcome(data, "companies.csv")
    if isinstance(result, list):
        assert all(len(c.corp_code) == 8 for c in result)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, depth=st.integers(min_value=0, max_value=400))
def test_json_of_any_shape_and_depth_is_companies_or_an_input_error(value: Any, depth: int) -> None:
    for _ in range(depth):
        value = [value]
    text = json.dumps(value)
    _outcome(text, "companies.json")
    _outcome(text + "\n" + text, "companies.jsonl")
