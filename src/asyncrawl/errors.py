"""asyncrawl's exceptions: one root, and whether to retry is a property of the type.

    AsyncrawlError
    ├── ConfigError          bad configuration or input; the message names the field and the fix
    │   └── InputError       a malformed input record (carries its line number)
    ├── FetchError           one HTTP attempt did not produce an answer (retryable)
    │   ├── TransportError   connection refused, reset, truncated or unreadable answer
    │   ├── AttemptTimeout   the attempt outlived its per-attempt timeout
    │   └── BodyTooLarge     the answer's body is larger than the fetcher accepts (not retried)
    ├── UpstreamFatalError   the upstream said stop (bad key, IP blocked, quota gone): the run ends
    ├── SinkError            a result could not be stored
    └── ContinuationError    a continuation token that does not parse or belongs to another run

Every message is built from redacted text: no secret (an API key in a URL's query string, say)
ever reaches ``str(error)``, and errors raised from third-party exceptions do not chain them
(``raise ... from None``) because their text may carry the secret.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AsyncrawlError",
    "AttemptTimeout",
    "BodyTooLarge",
    "ConfigError",
    "ContinuationError",
    "FetchError",
    "InputError",
    "SinkError",
    "TransportError",
    "UpstreamFatalError",
]


class AsyncrawlError(Exception):
    """Root of every error asyncrawl raises on purpose."""

    #: Whether trying the same thing again may succeed.
    retryable: ClassVar[bool] = False


class ConfigError(AsyncrawlError, ValueError):
    """Bad configuration or input. The message names the field and how to fix it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class InputError(ConfigError):
    """A malformed record in an input file (a company list, say), with its line number."""

    def __init__(self, source: str, line: int, field: str, problem: str) -> None:
        self.source = source
        self.line = line
        super().__init__(field, problem)
        self.args = (f"{source}, line {line}: {field}: {problem}",)


class FetchError(AsyncrawlError):
    """One HTTP attempt failed before a complete answer arrived."""

    retryable = True

    def __init__(self, message: str, *, url: str = "", status: str = "fetch_error") -> None:
        #: The request's URL with secrets redacted.
        self.url = url
        #: A short status for run accounting, e.g. ``"connection_reset"``.
        self.status = status
        super().__init__(message)


class TransportError(FetchError):
    """The connection was refused, reset or closed early, or the answer was unreadable."""


class AttemptTimeout(FetchError):
    """The attempt did not finish within its per-attempt timeout."""


class BodyTooLarge(FetchError):
    """The answer's body is larger than the fetcher's ``max_body_bytes``.

    Not retryable: the same URL answers the same size again. Its status is
    ``"body_too_large"``.
    """

    retryable = False


class UpstreamFatalError(AsyncrawlError):
    """The upstream refuses the whole run (bad key, IP blocked, quota exhausted)."""

    def __init__(self, reason: str, *, status: str = "fatal") -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


class SinkError(AsyncrawlError):
    """A result could not be stored; the item stays unfinished and is not counted ok."""

    retryable = True


class ContinuationError(AsyncrawlError):
    """A continuation token is malformed, of an unknown version, or for another run."""
