"""JSON log lines for CloudWatch: one object per line, never a secret.

:func:`configure_json_logging` gives the ``asyncrawl`` logger (every module's logger lives
under it) one handler that writes ``{"time", "level", "logger", "message", ...}`` per record,
with the fields of :func:`log_context` (``run_id``, ``aws_request_id``) and any ``extra=``
fields beside them, and an ``exception`` field holding the traceback.

Why its own logger and not the root: the Lambda runtime already puts a handler on the root
logger, and adding a second one there would print every line twice. ``asyncrawl`` records do
not propagate to the root; other libraries' records (botocore, say) still reach the runtime's
handler, which also gets :class:`~asyncrawl.redact.RedactingFilter`.

No registered secret reaches a line: the handler carries the redacting filter (message,
arguments and traceback), and the finished line is masked once more because ``extra=``
fields bypass the filter.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from ..redact import RedactingFilter, install_log_redaction, redact_text

__all__ = ["JsonFormatter", "configure_json_logging", "log_context", "reset_json_logging"]

#: The logger every asyncrawl module logs under.
_PACKAGE_LOGGER = "asyncrawl"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "asyncrawl_log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``run_id=…, aws_request_id=…``) to every JSON line logged inside.

    A context variable carries them, so tasks started inside (the engine's workers) inherit
    them, and they are gone when the block ends: a warm start does not leak the last run's id.
    """
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (UTF-8 text, Korean left readable)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line, secrets masked."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context.get() or {})
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        text = orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return redact_text(text)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_json_logging` installs (its class marks it as ours)."""


def configure_json_logging(
    level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send asyncrawl's logs to ``stream`` (default: standard output) as JSON lines.

    Idempotent: calling it again (every warm Lambda start does) replaces the handler it
    installed before instead of adding another, so no line is ever printed twice.
    Returns the installed handler.
    """
    logger = logging.getLogger(_PACKAGE_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _JsonHandler)]:
        logger.removeHandler(old)
    handler = _JsonHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    install_log_redaction(logging.getLogger())
    return handler


def reset_json_logging() -> None:
    """Undo :func:`configure_json_logging`: remove its handler, let records propagate again.

    For tests: after a handler test ran, other tests' ``caplog`` sees asyncrawl's records again.
    """
    logger = logging.getLogger(_PACKAGE_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _JsonHandler)]:
        logger.removeHandler(old)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
