"""Fuzzed command-line values: accepted within their caps, or refused (exit 2) naming the flag."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncrawl.cli import (
    MAX_CONCURRENCY,
    MAX_DEADLINE_S,
    _config,
    _flag_error,
    build_parser,
)
from asyncrawl.errors import ConfigError

BASE = ["crawl", "--kind=annual", "--companies=c.csv", "--years", "2023"]
FLAGS = [
    "--concurrency",
    "--deadline",
    "--rate",
    "--attempt-timeout",
    "--hedge-after",
    "--storage-timeout",
]
values = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.builds(
        lambda n, amount, unit: f"{n}/{amount}{unit}",
        st.integers(min_value=-5, max_value=10**9),
        st.integers(min_value=0, max_value=10**6),
        st.sampled_from(["", "s", "m", "h", "d", "x"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(flag=st.sampled_from(FLAGS), value=values)
def test_every_numeric_value_is_accepted_within_its_cap_or_refused_naming_the_flag(
    flag: str, value: str
) -> None:
    errors = io.StringIO()
    code: object = None
    try:
        with contextlib.redirect_stderr(errors):
            args = build_parser().parse_args([*BASE, f"{flag}={value}"])
    except SystemExit as exit_:
        code = exit_.code
    if code is not None:
        assert code == 2
        assert flag in errors.getvalue()
        assert "Traceback" not in errors.getvalue()
        return
    assert 1 <= args.concurrency <= MAX_CONCURRENCY
    assert args.deadline is None or 0 < args.deadline <= MAX_DEADLINE_S
    message = ""
    try:
        _config(args)
    except ConfigError as error:  # the engine's own check: still a message naming the flag
        message = _flag_error(error)
    assert not message or message.startswith(flag)


@pytest.mark.parametrize(
    ("field", "flag"),
    [("concurrency", "--concurrency"), ("uri", "--out"), ("root", "--out")],
)
def test_library_parameters_are_named_as_their_flags(field: str, flag: str) -> None:
    assert _flag_error(ConfigError(field, "is wrong; fix it")) == f"{flag}: is wrong; fix it"
