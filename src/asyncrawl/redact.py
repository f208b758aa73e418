"""Keep secrets out of everything a user or a log can see.

Two layers, because one is not enough: request URLs are redacted by parameter name
(``crtfc_key=…`` becomes ``crtfc_key=***``) wherever a URL is shown, and every secret value
registered with :func:`register_secret` is replaced by ``***`` in any text passed through
:func:`redact_text`, including every log record (:class:`RedactingFilter`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_redaction",
    "redact_text",
    "redact_url",
    "register_secret",
]

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Remember ``value`` so that :func:`redact_text` masks it from now on.

    Values shorter than 6 characters are ignored: masking them would garble ordinary text.
    """
    global _pattern
    if len(value) < 6:
        return
    with _lock:
        _secrets.add(value)
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact_text(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def redact_url(url: str, secret_params: Iterable[str] = ()) -> str:
    """``url`` with the values of ``secret_params`` in its query string masked."""
    names = set(secret_params)
    parts = urlsplit(url)
    if names and parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, MASK if k in names else v) for k, v in pairs], safe="*")
        parts = parts._replace(query=query)
    return redact_text(urlunsplit(parts))


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted tracebacks are rendered later from exc_info; render and mask them now.
            formatter = logging.Formatter()
            record.exc_text = redact_text(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach :class:`RedactingFilter` to every handler of ``logger`` (the root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
