"""Company lists: the ``--companies`` file (CSV, JSON or JSON Lines), local or on S3.

Format: by the name's extension (``.csv``, ``.tsv`` or ``.txt``; ``.json``; ``.jsonl`` or
``.ndjson``; any of them may be gzip-compressed, ``.gz``), otherwise sniffed from the content.
A file is at most :data:`MAX_LIST_BYTES` (also once decompressed).

Encoding: a byte-order mark decides (UTF-8, UTF-16 LE/BE); without one the text is read as
UTF-8 if it is valid UTF-8, else as CP949 (what Korean Excel saves; EUC-KR is a subset of it).
The encoding used is logged.

- CSV: a header row (line 1), then one company per row. The delimiter is ``,`` unless the
  header holds only tabs or semicolons. Strict: a quote that is never closed, a quoted value
  running over several lines and a row with more or fewer cells than the header are errors
  with their line numbers (a lenient reader would swallow every later row into one cell).
- JSON: an array of objects, or an object holding that array (under ``companies``, ``list``,
  ``items``, ``data``, ``rows`` or ``records``, or its only array value); nested at most
  :data:`MAX_JSON_DEPTH` deep.
- JSON Lines: one object per line.

Columns (names are case-insensitive; the first present name of each row wins):

- ``corp_code``, also ``dart_corp_code`` (the old Athena query's name): DART's 8-digit code.
  Numbers that lost their leading zeros are padded (``126380`` -> ``00126380``), as are JSON
  numbers and spreadsheet floats (``126380.0``). A row without one needs a ``stock_code``,
  looked up in OpenDART's corpCode.xml (``corp_codes`` of :func:`load_companies`).
- ``stock_code``: the 6-character KRX code, optional. Digits-only codes that lost zeros are
  padded (``5930`` -> ``005930``); alphanumeric codes (``0126Z0``) must have all 6
  characters. Lower-case letters are upper-cased (KRX codes are upper-case, so ``0126z0`` can
  only mean ``0126Z0``). Blank means unknown.
- ``corp_name``, also ``dart_corp`` and ``stock_nm``: the name, optional; blank means unknown.
  In the old Athena query ``stock_nm`` is the stock's *name*, never its code.

Other columns are ignored. Rows repeating a ``corp_code`` are dropped (the first is kept).
Every malformed row is collected and reported at once, with its 1-based line number and the
fix, in one :class:`CompanyListError`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import re
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from ...errors import ConfigError, InputError
from .items import Company

__all__ = [
    "CORP_CODE_COLUMNS",
    "CORP_NAME_COLUMNS",
    "MAX_JSON_DEPTH",
    "MAX_LIST_BYTES",
    "STOCK_CODE_COLUMNS",
    "CompanyListError",
    "CompanyRow",
    "RowProblem",
    "decode_text",
    "load_companies",
    "parse_companies",
    "read_company_rows",
    "resolve_companies",
]

_log = logging.getLogger(__name__)

#: Accepted column names for each field, in order of preference.
CORP_CODE_COLUMNS = ("corp_code", "dart_corp_code")
STOCK_CODE_COLUMNS = ("stock_code",)
CORP_NAME_COLUMNS = ("corp_name", "dart_corp", "stock_nm")
#: The largest company list read (raw, and again once decompressed): every company OpenDART
#: knows (about 110,000) fits in a few MB.
MAX_LIST_BYTES = 32 * 1024 * 1024
#: How deep a JSON company list may nest (it needs 3: object, array, company).
MAX_JSON_DEPTH = 16
#: Looks corp_codes up by stock code (from corpCode.xml), called only when a row needs it.
CorpCodeLookup = Callable[[], Awaitable[Mapping[str, Company]]]
#: How many bad rows an error message lists (all of them are in ``problems``).
LISTED_PROBLEMS = 20
#: Keys under which a JSON object may hold the array of companies.
_LIST_KEYS = ("companies", "list", "items", "data", "rows", "records")
_JSON_SPACE = " \t\n\r"
_DIGITS = re.compile(r"[0-9]+")
_FLOAT_DIGITS = re.compile(r"([0-9]+)\.0*")
_STOCK_CODE = re.compile(r"[0-9A-Z]{6}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RowProblem:
    """One malformed row: where it is, which field, and what is wrong with the fix."""

    line: int
    field: str
    problem: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompanyRow:
    """One well-formed row of a company list; ``corp_code`` is None when only the stock code
    was given (it is then looked up, see :func:`resolve_companies`)."""

    line: int
    corp_code: str | None
    stock_code: str | None
    corp_name: str | None


class CompanyListError(InputError):
    """A company list with malformed rows; ``problems`` holds every one of them.

    ``line``, ``field`` and ``problem`` are the first problem's; the message lists up to
    ``LISTED_PROBLEMS`` of them, one per line.
    """

    def __init__(self, source: str, problems: Sequence[RowProblem]) -> None:
        first = problems[0]
        super().__init__(source, first.line, first.field, first.problem)
        self.problems = tuple(problems)
        shown = [
            f"  {source}, line {p.line}: {p.field}: {p.problem}"
            for p in self.problems[:LISTED_PROBLEMS]
        ]
        more = len(self.problems) - len(shown)
        if more:
            shown.append(f"  ... and {more} more")
        count = len(self.problems)
        noun = "row" if count == 1 else "rows"
        header = f"{source}: {count} malformed {noun}; fix them and run again:"
        self.args = ("\n".join([header, *shown]),)


def read_company_rows(data: bytes | str, *, name: str) -> list[CompanyRow]:
    """The rows of ``data``, a CSV, JSON or JSON Lines company list called ``name``.

    Raises :class:`CompanyListError` listing every malformed row, and
    :class:`~asyncrawl.errors.InputError` for a file that cannot be read at all (too large,
    damaged, unbalanced CSV quotes, not JSON, no ``corp_code`` or ``stock_code`` column, no
    companies). Repeated companies are kept here; :func:`resolve_companies` drops them.
    """
    rows, problems = _read(data, name)
    if problems:
        raise CompanyListError(name, problems)
    return rows


def _read(data: bytes | str, name: str) -> tuple[list[CompanyRow], list[RowProblem]]:
    """The well-formed rows and the problems of the others (a file-wide problem raises)."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        _check_size(len(raw), name)
        if raw[:2] == b"\x1f\x8b":
            raw = _gunzip(raw, name)
        text = decode_text(raw, name)
    else:
        text = data.removeprefix("\ufeff")
    lower = name.lower().removesuffix(".gz")
    if lower.endswith((".csv", ".tsv", ".txt")):
        records = _csv_records(text, name)
    elif lower.endswith((".jsonl", ".ndjson")):
        records = _jsonl_records(text, name)
    elif lower.endswith(".json"):
        records = _json_records(text, name)
    else:
        records = _sniffed_records(text, name)
    return _rows(records, name)


def resolve_companies(
    rows: Sequence[CompanyRow], *, name: str, by_stock_code: Mapping[str, Company] | None = None
) -> list[Company]:
    """The companies of ``rows``: each row's corp_code, or the one its stock code has.

    ``by_stock_code`` maps KRX stock codes to OpenDART's companies (from corpCode.xml); a row
    with neither a corp_code nor a stock code found there is reported with its line. Repeated
    companies (same ``corp_code``) are dropped, keeping the first.
    """
    companies: list[Company] = []
    seen: set[str] = set()
    problems: list[RowProblem] = []
    for row in rows:
        corp_code = row.corp_code
        if corp_code is None:
            found = (by_stock_code or {}).get(row.stock_code or "")
            if found is None:
                problems.append(_unresolved(row, by_stock_code is not None))
                continue
            corp_code = found.corp_code
            corp_name = row.corp_name or found.corp_name
        else:
            corp_name = row.corp_name
        if corp_code in seen:
            continue
        seen.add(corp_code)
        companies.append(
            Company(corp_code=corp_code, stock_code=row.stock_code, corp_name=corp_name)
        )
    if problems:
        raise CompanyListError(name, problems)
    return companies


def _unresolved(row: CompanyRow, looked_up: bool) -> RowProblem:
    if looked_up:
        problem = (
            f"stock code {row.stock_code} is not in OpenDART's corpCode.xml; check the code "
            "or give the row's corp_code"
        )
    else:
        problem = (
            f"is missing (the row has only stock code {row.stock_code}); give the corp_code, "
            "or a corp-code table to look it up in (corp_codes)"
        )
    return RowProblem(line=row.line, field="corp_code", problem=problem)


def parse_companies(
    data: bytes | str, *, name: str, by_stock_code: Mapping[str, Company] | None = None
) -> list[Company]:
    """The companies listed in ``data``, a CSV, JSON or JSON Lines company list called ``name``.

    Errors are those of :func:`read_company_rows` and :func:`resolve_companies`.
    """
    rows, problems = _read(data, name)
    if by_stock_code is None:
        # Reported with the other problems: rows that only a corp-code table could resolve.
        problems += [_unresolved(row, False) for row in rows if row.corp_code is None]
    if problems:
        raise CompanyListError(name, sorted(problems, key=lambda p: p.line))
    return resolve_companies(rows, name=name, by_stock_code=by_stock_code)


async def load_companies(
    uri: str, *, field: str = "--companies", corp_codes: CorpCodeLookup | None = None
) -> list[Company]:
    """The companies of a list at ``uri``: a local path (or ``file://``) or ``s3://bucket/key``.

    S3 is read with aioboto3, which follows boto3's own settings (``AWS_ENDPOINT_URL_S3``,
    region, credentials chain). A file or object that cannot be read raises
    :class:`~asyncrawl.errors.ConfigError` naming ``field`` (``--companies`` on the command
    line, ``COMPANIES_URI`` in Lambda) and ``uri``. Rows with a stock code but no corp_code
    are looked up in the table ``corp_codes()`` returns, called only if some row needs it.
    """
    if uri.startswith("s3://"):
        data = await _read_s3(uri, field)
    else:
        path = uri.removeprefix("file://")
        data = await asyncio.to_thread(_read_local, path, field)
    # Parsing a long list takes a while; keep the event loop free meanwhile.
    rows = await asyncio.to_thread(read_company_rows, data, name=uri)
    by_stock_code = None
    if corp_codes is not None and any(row.corp_code is None for row in rows):
        by_stock_code = await corp_codes()
    return resolve_companies(rows, name=uri, by_stock_code=by_stock_code)


def _check_size(size: int, name: str) -> None:
    if size > MAX_LIST_BYTES:
        raise InputError(
            name,
            1,
            "file",
            f"is {size:,} bytes, more than the {MAX_LIST_BYTES:,} a company list may have; "
            "split it, or keep only the columns corp_code, stock_code and corp_name",
        )


def _read_local(path: str, field: str) -> bytes:
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_LIST_BYTES:
                raise ConfigError(
                    field,
                    f"{path} is {size:,} bytes, more than the {MAX_LIST_BYTES:,} a company list "
                    "may have; split it, or keep only corp_code, stock_code and corp_name",
                )
            return file.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(field, f"{path}: no such file; give the path of a company list") from None
    except IsADirectoryError:
        raise ConfigError(
            field, f"{path} is a directory; give the path of a company list"
        ) from None
    except OSError as error:
        raise ConfigError(field, f"{path}: cannot be read ({error.strerror})") from None


async def _read_s3(uri: str, field: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ConfigError(field, f"{uri!r} is not an S3 object URI; use s3://bucket/key.csv")
    # Imported here: aioboto3 is heavy and only S3 lists need it.
    import aioboto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        async with aioboto3.Session().client("s3") as s3:
            answer = await s3.get_object(Bucket=bucket, Key=key)
            async with answer["Body"] as body:
                size = int(answer.get("ContentLength") or 0)
                if size > MAX_LIST_BYTES:
                    raise ConfigError(
                        field,
                        f"{uri} is {size:,} bytes, more than the {MAX_LIST_BYTES:,} a company "
                        "list may have; split it, or keep only corp_code, stock_code and "
                        "corp_name",
                    )
                data: bytes = await body.read()
                return data
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "unknown"))
        if code in ("NoSuchKey", "404", "NotFound"):
            problem = f"{uri}: no such object; check the key"
        elif code == "NoSuchBucket":
            problem = f"{uri}: no such bucket; check the bucket name"
        elif code in ("AccessDenied", "403"):
            problem = f"{uri}: access denied; the role needs s3:GetObject on it"
        else:
            problem = f"{uri}: S3 answered {code}"
        raise ConfigError(field, problem) from None
    except BotoCoreError as error:
        raise ConfigError(field, f"{uri}: cannot be read ({type(error).__name__})") from None


def _gunzip(raw: bytes, name: str) -> bytes:
    # Bounded: a small gzip file can expand to gigabytes.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, MAX_LIST_BYTES + 1)
    except zlib.error:
        raise InputError(name, 1, "file", "is a damaged gzip file; compress it again") from None
    _check_size(len(data), name)
    if not inflater.eof:
        raise InputError(name, 1, "file", "is a damaged gzip file; compress it again")
    return data


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def decode_text(raw: bytes, name: str) -> str:
    """The text of a company list: by its byte-order mark, else UTF-8, else CP949.

    CP949 is what Korean Excel saves by default (EUC-KR is a subset of it). The encoding used
    is logged; bytes that are none of these raise :class:`~asyncrawl.errors.InputError` with
    the line of the first bad byte.
    """
    candidates = [encoding for bom, encoding in _BOMS if raw.startswith(bom)][:1]
    candidates = candidates or ["utf-8", "cp949"]
    last_error: UnicodeDecodeError | None = None
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            last_error = error
            continue
        _log.info("%s: read as %s", name, encoding.removesuffix("-sig").upper())
        return text.removeprefix("\ufeff")
    assert last_error is not None  # at least one candidate was tried
    line = raw.count(b"\n", 0, last_error.start) + 1
    tried = " nor ".join(c.removesuffix("-sig").upper() for c in candidates)
    raise InputError(
        name,
        line,
        "encoding",
        f"the file is neither {tried}; save it as UTF-8 (in Excel: 'CSV UTF-8')",
    )


# A record: its line number and the row, or what makes the row unreadable.
_Record = tuple[int, Mapping[str, object] | RowProblem]
_NOT_AN_OBJECT = 'is not an object; write each company as {"corp_code": "00126380"}'


def _sniffed_records(text: str, name: str) -> Iterator[_Record]:
    stripped = text.lstrip(_JSON_SPACE)
    if stripped.startswith("["):
        return _json_records(text, name)
    if stripped.startswith("{"):
        first_line = stripped.split("\n", 1)[0]
        try:
            json.loads(first_line)
        except json.JSONDecodeError:
            return _json_records(text, name)
        # A complete object on the first line: JSON Lines, unless it is the whole document.
        if stripped.strip(_JSON_SPACE) == first_line.strip(_JSON_SPACE):
            return _json_records(text, name)
        return _jsonl_records(text, name)
    return _csv_records(text, name)


def _csv_records(text: str, name: str) -> Iterator[_Record]:
    first_line = next((line for line in text.split("\n") if line.strip()), "")
    delimiter = ","
    if "," not in first_line:
        for candidate in ("\t", ";"):
            if candidate in first_line:
                delimiter = candidate
                break
    # strict: a quote never closed is an error, not a cell swallowing every later row.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    previous_end = 0
    try:
        for cells in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if reader.line_num > line and any("\n" in c or "\r" in c for c in cells):
                raise InputError(
                    name,
                    line,
                    "csv",
                    f"a quoted value runs from line {line} to line {reader.line_num}; a quote "
                    "is probably not closed: close it, or remove the line break inside it",
                )
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                _require_code_column(header, line, name)
                continue
            if len(cells) != len(header):
                fix = (
                    "quote values that contain the delimiter"
                    if len(cells) > len(header)
                    else "add the missing cells (they may be empty)"
                )
                problem = f"has {len(cells)} cells but the header has {len(header)}; {fix}"
                yield line, RowProblem(line=line, field="row", problem=problem)
                continue
            yield line, dict(zip(header, cells, strict=True))
    except csv.Error as error:
        start = previous_end + 1
        if "unexpected end of data" in str(error):
            problem = f"the quote opened on line {start} is never closed; close it, or remove it"
        else:
            problem = f"unreadable CSV ({error}); check its quoting"
        raise InputError(name, start, "csv", problem) from None


def _require_code_column(header: Sequence[str], line: int, name: str) -> None:
    if not any(column in header for column in (*CORP_CODE_COLUMNS, *STOCK_CODE_COLUMNS)):
        found = ", ".join(repr(c) for c in header if c) or "none"
        raise InputError(
            name,
            line,
            "corp_code",
            f"no corp_code column; name it {' or '.join(CORP_CODE_COLUMNS)}, or give a "
            f"stock_code column to look corp_codes up (found: {found})",
        )


def _check_depth(text: str, name: str, line: int = 1) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` before parsing it.

    The parser would recurse once per level and end in a RecursionError; brackets inside
    strings do not count.
    """
    outside_strings = _JSON_STRING.sub("", text)
    steps = (1 if c in "[{" else -1 for c in _BRACKETS.findall(outside_strings))
    if max(accumulate(steps, initial=0)) > MAX_JSON_DEPTH:
        raise InputError(
            name,
            line,
            "json",
            f"is nested more than {MAX_JSON_DEPTH} levels deep; a company list is an array "
            'of flat objects such as [{"corp_code": "00126380"}]',
        )


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _jsonl_records(text: str, name: str) -> Iterator[_Record]:
    for index, raw_line in enumerate(text.split("\n"), start=1):
        stripped = raw_line.strip(_JSON_SPACE)
        if not stripped:
            continue
        _check_depth(stripped, name, index)
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as error:
            problem = f"not valid JSON ({error.msg}); write one object per line"
            yield index, RowProblem(line=index, field="json", problem=problem)
            continue
        if isinstance(value, dict):
            yield index, value
        else:
            yield index, RowProblem(line=index, field="row", problem=_NOT_AN_OBJECT)


def _json_records(text: str, name: str) -> Iterator[_Record]:
    _check_depth(text, name)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            name, error.lineno, "json", f"not valid JSON ({error.msg}, column {error.colno})"
        ) from None
    if isinstance(document, dict):
        keys = {str(k).strip().lower() for k in document}
        if any(column in keys for column in (*CORP_CODE_COLUMNS, *STOCK_CODE_COLUMNS)):
            # A single company object.
            start = len(text) - len(text.lstrip(_JSON_SPACE))
            return iter([(text.count("\n", 0, start) + 1, document)])
        list_key = _list_key(document, name)
        elements = document[list_key]
        start = _member_start(text, list_key)
    elif isinstance(document, list):
        elements = document
        start = len(text) - len(text.lstrip(_JSON_SPACE))
    else:
        raise InputError(
            name, 1, "json", 'expected an array of company objects, e.g. [{"corp_code": ...}]'
        )
    lines = _element_lines(text, start)
    return (
        (
            line,
            element
            if isinstance(element, dict)
            else RowProblem(line=line, field="row", problem=_NOT_AN_OBJECT),
        )
        for line, element in zip(lines, elements, strict=True)
    )


def _list_key(document: Mapping[str, object], name: str) -> str:
    for key in _LIST_KEYS:
        if isinstance(document.get(key), list):
            return key
    arrays = [key for key, value in document.items() if isinstance(value, list)]
    if len(arrays) == 1:
        return arrays[0]
    raise InputError(
        name,
        1,
        "json",
        "expected an array of company objects, or an object holding it under 'companies'",
    )


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_SPACE:
        pos += 1
    return pos


def _member_start(text: str, wanted: str) -> int:
    """Where the value of the top-level member ``wanted`` starts (the last one, as json does)."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0) + 1  # past "{"
    found = -1
    while True:
        pos = _skip_space(text, pos)
        if text[pos] == "}":
            return found
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos) + 1  # past ":"
        pos = _skip_space(text, pos)
        if key == wanted:
            found = pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos)
        if text[pos] == ",":
            pos += 1


def _element_lines(text: str, start: int) -> Iterator[int]:
    """The 1-based line on which each element of the (valid) JSON array at ``start`` begins."""
    decoder = json.JSONDecoder()
    line, counted = 1, 0
    pos = start + 1  # past "["
    while True:
        pos = _skip_space(text, pos)
        if text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        yield line
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos)
        if text[pos] == ",":
            pos += 1


def _pick(row: Mapping[str, object], columns: Sequence[str]) -> object:
    for column in columns:
        if column in row:
            return row[column]
    return None


def _rows(records: Iterator[_Record], name: str) -> tuple[list[CompanyRow], list[RowProblem]]:
    rows: list[CompanyRow] = []
    problems: list[RowProblem] = []
    for line, record in records:
        if isinstance(record, RowProblem):
            problems.append(record)
            continue
        row: dict[str, object] = {}
        for key, value in record.items():
            row.setdefault(str(key).strip().lower(), value)
        company = _company(row, line, problems)
        if company is not None:
            rows.append(company)
    if not rows and not problems:
        raise InputError(
            name, 1, "corp_code", "no companies: add one row per company with its corp_code"
        )
    return rows, problems


def _company(row: Mapping[str, object], line: int, problems: list[RowProblem]) -> CompanyRow | None:
    before = len(problems)
    raw_corp_code = _pick(row, CORP_CODE_COLUMNS)
    stock_code = _stock_code(_pick(row, STOCK_CODE_COLUMNS), line, problems)
    corp_name = _corp_name(_pick(row, CORP_NAME_COLUMNS), line, problems)
    corp_code = None
    if not _blank(raw_corp_code) or stock_code is None:
        corp_code = _corp_code(raw_corp_code, line, problems)
    if len(problems) > before:
        return None
    return CompanyRow(line=line, corp_code=corp_code, stock_code=stock_code, corp_name=corp_name)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _digits(value: object) -> str | None:
    """The digits of a whole number however a spreadsheet or JSON wrote it, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text):
            return text
        match = _FLOAT_DIGITS.fullmatch(text)
        if match:
            return match.group(1)
    return None


def _corp_code(value: object, line: int, problems: list[RowProblem]) -> str | None:
    if _blank(value):
        problems.append(
            RowProblem(
                line=line,
                field="corp_code",
                problem="is missing; every row needs DART's 8-digit corp_code (e.g. 00126380) "
                "or a stock_code to look it up by",
            )
        )
        return None
    digits = _digits(value)
    if digits is None or len(digits) > 8:
        problems.append(
            RowProblem(
                line=line,
                field="corp_code",
                problem=f"{value!r} is not DART's 8-digit corp_code; use digits, e.g. 00126380",
            )
        )
        return None
    return digits.zfill(8)


def _stock_code(value: object, line: int, problems: list[RowProblem]) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    digits = _digits(value)
    if digits is not None and len(digits) <= 6:
        return digits.zfill(6)
    text = value.strip().upper() if isinstance(value, str) else ""
    if _STOCK_CODE.fullmatch(text):
        return text
    fix = "use the 6-character KRX code, e.g. 005930 or 0126Z0"
    if len(text) == 7 and text.startswith("A") and _STOCK_CODE.fullmatch(text[1:]):
        fix = f"drop the leading 'A' ({text[1:]})"
    problems.append(
        RowProblem(line=line, field="stock_code", problem=f"{value!r} is not a stock code; {fix}")
    )
    return None


def _corp_name(value: object, line: int, problems: list[RowProblem]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    problems.append(
        RowProblem(line=line, field="corp_name", problem=f"{value!r} is not a name; use text")
    )
    return None
