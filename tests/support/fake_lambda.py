"""A local endpoint that speaks the Lambda Invoke REST API, for boto3 clients in tests.

boto3 is synchronous, so this is a ``ThreadingHTTPServer`` on 127.0.0.1 in a background
thread. Point a client at :attr:`FakeLambda.url` (``endpoint_url``) with dummy credentials.
Each ``POST /2015-03-31/functions/{name}/invocations`` takes the next scripted :class:`Reply`
(a queue), or asks :attr:`FakeLambda.handler` when the queue is empty, and is recorded in
:attr:`FakeLambda.requests`, so tests can count how many times the function "ran".
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "AWS_TEST_ENV",
    "AWS_UNSET_ENV",
    "FakeLambda",
    "Invocation",
    "Reply",
    "answer",
    "drop",
    "function_error",
    "service_error",
    "throttle",
]

_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the fake does with one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Whether the function counts as having run (false for throttling).
    runs: bool = True
    #: Close the connection after reading the request, without answering.
    drop: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """One request the fake received."""

    function_name: str
    invocation_type: str | None
    #: The decoded JSON event (None for an empty body).
    payload: Any
    #: Whether the function "ran" for it (the reply's ``runs``).
    ran: bool


def answer(status_code: int, body: dict[str, Any]) -> Reply:
    """The handler's contract answer: ``{"statusCode", "headers", "body": "<json>"}``."""
    document = {
        "statusCode": status_code,
        "headers": {"Content-Type": "application/json; charset=utf-8"},
        "body": json.dumps(body),
    }
    return Reply(body=json.dumps(document).encode())


def function_error(message: str, error_type: str = "RuntimeError") -> Reply:
    """The function raised: Lambda answers 200 with ``X-Amz-Function-Error: Unhandled``."""
    document = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
    return Reply(headers={"X-Amz-Function-Error": "Unhandled"}, body=json.dumps(document).encode())


def throttle() -> Reply:
    """Lambda's 429 ``TooManyRequestsException``: the function did not run."""
    document = {"Type": "User", "message": "Rate Exceeded.", "Reason": "CallerRateLimitExceeded"}
    return Reply(
        status=429,
        headers={"x-amzn-ErrorType": "TooManyRequestsException"},
        body=json.dumps(document).encode(),
        runs=False,
    )


def service_error() -> Reply:
    """Lambda's 500 ``ServiceException`` (botocore retries these unless told not to)."""
    document = {"Type": "Service", "message": "Internal failure."}
    return Reply(
        status=500,
        headers={"x-amzn-ErrorType": "ServiceException"},
        body=json.dumps(document).encode(),
    )


def drop() -> Reply:
    """Read the request, then close the connection: the function ran, its answer is lost."""
    return Reply(drop=True)


class FakeLambda:
    """The server, its script and its record. Use as a context manager."""

    def __init__(self, handler: Callable[[Any], Reply] | None = None) -> None:
        #: Replies used in order, before :attr:`handler` is asked.
        self.replies: deque[Reply] = deque()
        #: Called with each request's decoded event when :attr:`replies` is empty.
        self.handler = handler
        self._requests: list[Invocation] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        # A short poll interval keeps shutdown (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """The ``endpoint_url`` to give boto3."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Invocation]:
        """Every request received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def runs(self) -> int:
        """How many times the function ran."""
        return sum(1 for r in self.requests if r.ran)

    def script(self, *replies: Reply) -> None:
        """Queue ``replies`` for the next requests."""
        self.replies.extend(replies)

    def _reply_for(self, function_name: str, invocation_type: str | None, raw: bytes) -> Reply:
        payload = json.loads(raw) if raw else None
        with self._lock:
            if self.replies:
                reply = self.replies.popleft()
            elif self.handler is not None:
                reply = self.handler(payload)
            else:
                reply = Reply(status=500, body=b'{"message": "FakeLambda: nothing scripted"}')
            self._requests.append(
                Invocation(
                    function_name=function_name,
                    invocation_type=invocation_type,
                    payload=payload,
                    ran=reply.runs,
                )
            )
        return reply

    def __enter__(self) -> FakeLambda:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _make_handler(fake: FakeLambda) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep connections open, as Lambda's endpoint does
        timeout = 10  # a handler thread waiting on an idle keep-alive connection gives up

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            # A proxied request names the absolute URI; a direct one only the path.
            path = urlsplit(self.path).path
            if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
                self._send(Reply(status=404, body=b'{"message": "unknown path"}'))
                return
            name = unquote(path[len(_PREFIX) : -len(_SUFFIX)])
            reply = fake._reply_for(name, self.headers.get("X-Amz-Invocation-Type"), raw)
            if reply.drop:
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    return Handler


#: Environment for a boto3 client that talks only to the fake: dummy credentials, a region,
#: no profile, no shared config, no instance metadata, no retry or endpoint settings.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: Variables that would change which endpoint or retry policy a client uses.
AWS_UNSET_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
)
