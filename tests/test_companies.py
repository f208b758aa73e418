"""Company lists: CSV, JSON and JSON Lines, local or on S3, and how bad rows are reported."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from asyncrawl.errors import ConfigError, InputError
from asyncrawl.sources.opendart import (
    Company,
    CompanyListError,
    load_companies,
    parse_companies,
)

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

# The plugin (not an import) provides the moto_s3 fixture, so pytest can rewrite its asserts.
pytest_plugins = ["support.moto_s3"]

SAMSUNG = Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자")


def codes(companies: list[Company]) -> list[str]:
    return [c.corp_code for c in companies]


# --- good lists --------------------------------------------------------------------------------


def test_csv_with_header_pads_codes_that_lost_their_zeros() -> None:
    text = "corp_code,stock_code,corp_name\n126380,5930,삼성전자\n00164779,000660,SK하이닉스\n"
    assert parse_companies(text.encode(), name="companies.csv") == [
        SAMSUNG,
        Company(corp_code="00164779", stock_code="000660", corp_name="SK하이닉스"),
    ]


def test_csv_saved_by_excel_with_a_bom_and_crlf() -> None:
    data = "\ufeffcorp_code,stock_code\r\n00126380,005930\r\n".encode()
    assert parse_companies(data, name="list.csv") == [
        Company(corp_code="00126380", stock_code="005930")
    ]


def test_old_athena_column_names_are_accepted() -> None:
    text = "dart_corp_code,stock_code,stock_nm\n126380,5930,삼성전자\n"
    assert parse_companies(text, name="athena.csv") == [SAMSUNG]


def test_stock_nm_is_a_name_never_a_stock_code() -> None:
    # In the old Athena query stock_nm is the stock's name: a names-only file must not fail
    # every row as a malformed stock code.
    text = "dart_corp_code,stock_nm\n00126380,삼성전자\n00164779,SK하이닉스\n"
    assert parse_companies(text, name="athena.csv") == [
        Company(corp_code="00126380", corp_name="삼성전자"),
        Company(corp_code="00164779", corp_name="SK하이닉스"),
    ]


def test_stock_code_wins_over_stock_nm_when_both_are_present() -> None:
    # The old Athena output carries both; its stock_nm beside stock_code is not a code.
    text = "dart_corp_code,stock_code,stock_nm,corp_name\n00126380,005930,삼성전자보통주,삼성전자\n"
    assert parse_companies(text, name="athena.csv") == [SAMSUNG]


def test_corp_name_wins_over_dart_corp() -> None:
    text = "corp_code,corp_name,dart_corp\n00126380,삼성전자,삼성전자(주)\n"
    assert parse_companies(text, name="x.csv")[0].corp_name == "삼성전자"


def test_alphanumeric_codes_kept_and_lower_case_letters_upper_cased() -> None:
    text = "corp_code,stock_code\n01680244,0126Z0\n01680245,0088m0\n"
    assert [c.stock_code for c in parse_companies(text, name="x.csv")] == ["0126Z0", "0088M0"]


def test_spreadsheet_floats_and_blank_optional_fields() -> None:
    text = "Corp_Code,STOCK_CODE,corp_name\n126380.0,5930.0,\n00164779,,  \n"
    assert parse_companies(text, name="x.csv") == [
        Company(corp_code="00126380", stock_code="005930"),
        Company(corp_code="00164779"),
    ]


def test_tab_separated_and_extra_columns_ignored() -> None:
    text = "market\tcorp_code\tstock_code\nKOSPI\t00126380\t005930\n"
    assert parse_companies(text, name="x.tsv") == [
        Company(corp_code="00126380", stock_code="005930")
    ]


def test_json_array_with_numbers_that_lost_their_zeros() -> None:
    data = json.dumps([{"corp_code": 126380, "stock_code": 5930, "corp_name": "삼성전자"}])
    assert parse_companies(data, name="c.json") == [SAMSUNG]


@pytest.mark.parametrize("key", ["companies", "list", "whatever"])
def test_json_object_holding_the_list(key: str) -> None:
    data = json.dumps({"generated": "2024-05-01", key: [{"dart_corp_code": "00126380"}]})
    assert codes(parse_companies(data, name="c.json")) == ["00126380"]


def test_json_lines() -> None:
    data = '{"corp_code": "00126380", "stock_code": "005930"}\n\n{"corp_code": "00164779"}\n'
    assert codes(parse_companies(data, name="c.jsonl")) == ["00126380", "00164779"]
    assert codes(parse_companies(data, name="c.ndjson")) == ["00126380", "00164779"]


@pytest.mark.parametrize(
    "data",
    [
        "corp_code\n00126380\n",
        '[{"corp_code": "00126380"}]',
        '{"corp_code": "00126380"}\n{"corp_code": "00164779"}\n',
    ],
)
def test_format_is_sniffed_without_an_extension(data: str) -> None:
    assert codes(parse_companies(data, name="s3://bucket/companies"))[0] == "00126380"


def test_gzip_compressed_list() -> None:
    data = gzip.compress(b"corp_code\n00126380\n")
    assert codes(parse_companies(data, name="companies.csv.gz")) == ["00126380"]


def test_duplicates_are_dropped_keeping_the_first() -> None:
    text = "corp_code,corp_name\n00126380,first\n126380,second\n00164779,other\n"
    assert parse_companies(text, name="x.csv") == [
        Company(corp_code="00126380", corp_name="first"),
        Company(corp_code="00164779", corp_name="other"),
    ]


# --- bad lists ---------------------------------------------------------------------------------


def test_every_bad_csv_row_is_reported_with_its_line_and_fix() -> None:
    text = (
        "corp_code,stock_code\n"  # line 1
        "00126380,005930\n"  # 2: fine
        "abc,005930\n"  # 3: bad corp_code
        "\n"  # 4: blank, skipped but counted
        "123456789,\n"  # 5: nine digits
        "00164779,A005930\n"  # 6: KRX code with the 'A' prefix
        "00164780,12345678\n"  # 7: too long
        ",005930\n"  # 8: missing corp_code
    )
    with pytest.raises(CompanyListError) as caught:
        parse_companies(text, name="companies.csv")
    error = caught.value
    assert [(p.line, p.field) for p in error.problems] == [
        (3, "corp_code"),
        (5, "corp_code"),
        (6, "stock_code"),
        (7, "stock_code"),
        (8, "corp_code"),
    ]
    message = str(error)
    assert "companies.csv, line 3: corp_code: 'abc'" in message
    assert "drop the leading 'A' (005930)" in message
    assert "e.g. 00126380" in message
    assert (error.line, error.field) == (3, "corp_code")
    assert isinstance(error, InputError)


def test_json_array_rows_are_reported_by_the_line_they_start_on() -> None:
    data = (
        "[\n"
        '  {"corp_code": "00126380"},\n'
        '  {"corp_code": "x1"},\n'
        "  {\n"
        '    "corp_code": true\n'
        "  },\n"
        '  "00164779"\n'
        "]"
    )
    with pytest.raises(CompanyListError) as caught:
        parse_companies(data, name="c.json")
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (3, "corp_code"),
        (4, "corp_code"),
        (7, "row"),
    ]


def test_json_lines_rows_are_reported_by_their_line() -> None:
    data = '{"corp_code": "00126380"}\n{"corp_code": \n[1]\n{"stock_code": "005930"}\n'
    with pytest.raises(CompanyListError) as caught:
        parse_companies(data, name="c.jsonl")
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (2, "json"),
        (3, "row"),
        (4, "corp_code"),
    ]


def test_long_error_lists_show_twenty_and_count_the_rest() -> None:
    text = "corp_code\n" + "bad\n" * 25
    with pytest.raises(CompanyListError) as caught:
        parse_companies(text, name="x.csv")
    assert len(caught.value.problems) == 25
    message = str(caught.value)
    assert "x.csv: 25 malformed rows" in message
    assert "line 21:" in message
    assert "line 22:" not in message
    assert "... and 5 more" in message


def test_unquoted_delimiter_in_a_row_is_reported_not_guessed() -> None:
    text = "corp_code,corp_name\n00126380,Samsung Electronics Co., Ltd.\n"
    with pytest.raises(CompanyListError, match="line 2: row: has 3 cells"):
        parse_companies(text, name="x.csv")


def test_missing_corp_code_column_names_the_accepted_columns() -> None:
    with pytest.raises(InputError) as caught:
        parse_companies("code,name\n00126380,x\n", name="x.csv")
    assert caught.value.line == 1
    assert "corp_code or dart_corp_code" in str(caught.value)
    assert "'code'" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "name"),
    [("", "x.csv"), ("corp_code,stock_code\n", "x.csv"), ("[]", "x.json"), ("\n", "x.jsonl")],
)
def test_a_list_without_companies_is_an_error(data: str, name: str) -> None:
    with pytest.raises(ConfigError, match="no companies"):
        parse_companies(data, name=name)


def test_a_list_in_no_known_encoding_is_reported_with_its_line() -> None:
    # Valid neither as UTF-8 nor as CP949 (0xFF never starts a CP949 character).
    data = b"corp_code,corp_name\n00126380,\xff\xff\n"
    with pytest.raises(InputError) as caught:
        parse_companies(data, name="excel.csv")
    assert caught.value.line == 2
    assert "UTF-8" in str(caught.value)


def test_invalid_json_is_reported_with_its_line() -> None:
    with pytest.raises(InputError) as caught:
        parse_companies('[\n{"corp_code": "00126380"},\n{oops}\n]', name="c.json")
    assert caught.value.line == 3
    assert "not valid JSON" in str(caught.value)


def test_json_document_that_is_not_a_list_of_companies() -> None:
    with pytest.raises(InputError, match="array of company objects"):
        parse_companies('"00126380"', name="c.json")


# --- loading -----------------------------------------------------------------------------------


async def test_load_from_a_local_path(tmp_path: Path) -> None:
    path = tmp_path / "companies.csv"
    path.write_text("corp_code,stock_code,corp_name\n126380,005930,삼성전자\n")
    assert await load_companies(str(path)) == [SAMSUNG]


async def test_load_from_a_missing_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        await load_companies(str(tmp_path / "nope.csv"), field="COMPANIES_URI")
    assert caught.value.field == "COMPANIES_URI"
    assert "no such file" in str(caught.value)


async def test_load_from_s3(moto_s3: MotoS3) -> None:
    body = '{"corp_code": "00126380", "stock_code": "005930", "corp_name": "삼성전자"}\n'
    moto_s3.client().put_object(Bucket=moto_s3.bucket, Key="in/companies.jsonl", Body=body)
    assert await load_companies(f"s3://{moto_s3.bucket}/in/companies.jsonl") == [SAMSUNG]


async def test_load_from_a_missing_s3_object(moto_s3: MotoS3) -> None:
    with pytest.raises(ConfigError, match="no such object"):
        await load_companies(f"s3://{moto_s3.bucket}/missing.csv")


async def test_bad_rows_in_an_s3_list_name_the_uri(moto_s3: MotoS3) -> None:
    moto_s3.client().put_object(Bucket=moto_s3.bucket, Key="c.csv", Body=b"corp_code\nxyz\n")
    uri = f"s3://{moto_s3.bucket}/c.csv"
    with pytest.raises(CompanyListError, match=re.escape(f"{uri}, line 2: corp_code")):
        await load_companies(uri)


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "s3://bucket/dir/"])
async def test_malformed_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("s3://bucket/key.csv")):
        await load_companies(uri)


# --- encodings (Korean Excel saves CP949) ------------------------------------------------------

ATHENA_CSV = "dart_corp_code,stock_code,stock_nm,dart_corp\n126380,5930,삼성전자,삼성전자(주)\n"
ATHENA_COMPANY = Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자(주)")


@pytest.mark.parametrize(
    ("encoded", "logged"),
    [
        (ATHENA_CSV.encode("cp949"), "CP949"),
        (ATHENA_CSV.encode("euc-kr"), "CP949"),  # EUC-KR is a subset of CP949
        ("\ufeff".encode() + ATHENA_CSV.encode(), "UTF-8"),
        (ATHENA_CSV.encode(), "UTF-8"),
        (ATHENA_CSV.encode("utf-16"), "UTF-16"),  # with its BOM (LE here)
        (ATHENA_CSV.encode("utf-16-be").join([b"\xfe\xff", b""]), "UTF-16"),
    ],
)
def test_korean_lists_are_read_in_their_encoding_and_it_is_logged(
    encoded: bytes, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="asyncrawl.sources.opendart.companies")
    # dart_corp (the company's name) wins over stock_nm (the stock's name, never its code).
    assert parse_companies(encoded, name="athena.csv") == [ATHENA_COMPANY]
    assert f"athena.csv: read as {logged}" in caplog.text


# --- strict CSV ---------------------------------------------------------------------------------


def test_an_unclosed_quote_is_an_error_not_a_silent_swallow() -> None:
    # Before: one company, the other three rows swallowed into its name, exit 0.
    text = 'corp_code,corp_name\n00126380,"Samsung\n00164779,SK\n00164742,Hyundai\n00106641,Kia\n'
    with pytest.raises(InputError) as caught:
        parse_companies(text, name="c.csv")
    assert caught.value.line == 2
    assert "never closed" in str(caught.value)


def test_a_quote_closed_lines_later_is_an_error_naming_both_lines() -> None:
    text = 'corp_code,corp_name\n00126380,"Samsung\n00164779,SK"\n00164742,Hyundai\n'
    with pytest.raises(InputError) as caught:
        parse_companies(text, name="c.csv")
    assert caught.value.line == 2
    assert "from line 2 to line 3" in str(caught.value)


def test_stray_characters_after_a_closing_quote_are_an_error() -> None:
    with pytest.raises(InputError, match="line 2: csv"):
        parse_companies('corp_code,corp_name\n00126380,"Sam"sung\n', name="c.csv")


def test_rows_with_too_few_cells_are_reported_with_their_lines() -> None:
    text = "corp_code,stock_code,corp_name\n00126380,005930,삼성전자\n00164779\n"
    with pytest.raises(CompanyListError) as caught:
        parse_companies(text, name="c.csv")
    assert [(p.line, p.field) for p in caught.value.problems] == [(3, "row")]
    assert "has 1 cells but the header has 3" in str(caught.value)


# --- JSON depth and file size --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl", "deep"])
def test_deeply_nested_json_is_an_input_error_not_a_recursion_error(name: str) -> None:
    data = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InputError, match="nested more than"):
        parse_companies(data, name=name)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    data = json.dumps([{"corp_code": "00126380", "corp_name": "[" * 50 + '\\"{' * 50}])
    assert codes(parse_companies(data, name="c.json")) == ["00126380"]


def test_a_list_over_the_size_cap_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from asyncrawl.sources.opendart import companies as module

    monkeypatch.setattr(module, "MAX_LIST_BYTES", 100)
    big = ("corp_code\n" + "00126380\n" * 20).encode()
    with pytest.raises(InputError, match="more than the 100 a company list may have; split it"):
        parse_companies(big, name="big.csv")
    with pytest.raises(InputError, match="more than the 100"):
        parse_companies(gzip.compress(big), name="big.csv.gz")


async def test_a_local_file_over_the_size_cap_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncrawl.sources.opendart import companies as module

    monkeypatch.setattr(module, "MAX_LIST_BYTES", 100)
    path = tmp_path / "big.csv"
    path.write_text("corp_code\n" + "00126380\n" * 20)
    with pytest.raises(ConfigError, match=r"--companies: .* more than the 100"):
        await load_companies(str(path))
