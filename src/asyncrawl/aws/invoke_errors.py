"""What can go wrong calling the crawler Lambda: one exception class per way.

Standard library only (plus asyncrawl.errors): the boto3-only caller imports it in Amazon MWAA.
See :mod:`asyncrawl.aws.caller` for the tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asyncrawl.errors import AsyncrawlError

__all__ = [
    "FailedItemsError",
    "HandlerStatusError",
    "InvocationLimitError",
    "InvokeRejectedError",
    "LambdaFunctionError",
    "LambdaInvocationError",
    "MalformedAnswerError",
    "NoProgressError",
    "NotInvokedError",
    "RunBusyError",
    "UncertainInvocationError",
]


class LambdaInvocationError(AsyncrawlError):
    """An invocation did not give a usable answer, or the run it answered is not acceptable."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        function_error: str | None = None,
        summary: Mapping[str, Any] | None = None,
        continuation: Any = None,
    ) -> None:
        #: The handler's ``statusCode``, or the HTTP status of a refused call; None if unknown.
        self.status_code = status_code
        #: The ``FunctionError`` Lambda reported (``"Unhandled"``), if the function raised.
        self.function_error = function_error
        #: What went wrong, with secrets redacted.
        self.message = message
        #: The merged run summary of the invocations that did answer, if any did.
        self.summary = dict(summary) if summary is not None else None
        #: The last continuation received: invoke with it (and the run id) to finish the run.
        self.continuation = continuation
        super().__init__(message)


class NotInvokedError(LambdaInvocationError):
    """Lambda throttled the call, or no connection could be made, until retries ran out.

    The function did not run, so trying again later is safe.
    """

    retryable: ClassVar[bool] = True


class InvokeRejectedError(LambdaInvocationError):
    """Lambda refused the request (unknown function, no permission, bad payload): it did not run."""


class UncertainInvocationError(LambdaInvocationError):
    """The call broke after the request was sent; the function may have run, so no retry."""


class LambdaFunctionError(LambdaInvocationError):
    """The function raised instead of answering (the response carries ``FunctionError``)."""


class HandlerStatusError(LambdaInvocationError):
    """The handler answered with an error status: 400 (bad event) or 500 (fatal)."""


class MalformedAnswerError(LambdaInvocationError):
    """The answer is not ``{"statusCode", "headers", "body"}`` with the contract's body."""


class FailedItemsError(LambdaInvocationError):
    """The run finished, but more items failed than ``tolerated_failed_items`` allows."""


class NoProgressError(LambdaInvocationError):
    """A 206 answer finished no item: invoking again would loop without end."""


class InvocationLimitError(LambdaInvocationError):
    """The run still had work left after ``max_invocations`` invocations."""


class RunBusyError(HandlerStatusError):
    """The handler answered that another invocation holds the run's lease: try again later."""
