"""Replies: what endpoints and middlewares return, and how results and errors become one.

A `Reply` is a small mutable record (status, encoded body, headers) that middlewares can
add headers to on the way out; the server turns it into an aiohttp response at the very end.
Error replies always have the same shape, `{"error": {"status", "message", "requestId"}}`,
carry the request id in `X-Request-ID`, and never contain a traceback or exception text for
server-side failures (those are logged with the request id instead).
"""

from __future__ import annotations

import decimal
import logging
from collections.abc import AsyncIterable
from typing import Any

import orjson

from flownb.errors import ExecutionError
from flownb.execution import Response

log = logging.getLogger("flownb.http")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"

# 5xx statuses whose ExecutionError messages are meant for the caller (a failed upstream
# call, an unavailable engine, a step timeout); any other 5xx says only "internal error".
_USER_FACING_5XX = frozenset({502, 503, 504})
_EMPTY_BODY_STATUSES = frozenset({204, 304})


class Reply:
    """An HTTP reply on its way out: status, encoded body, headers (canonical-case names).

    `stream`, when set, is the body as chunks written as they come (a proxied upstream
    reply); `body` is then empty.
    """

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        stream: AsyncIterable[bytes] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = {} if headers is None else headers
        self.stream = stream

    def __repr__(self) -> str:
        return f"<Reply {self.status} {len(self.body)} bytes>"


def _default(value: Any) -> Any:
    """JSON for the few types orjson leaves out (sets, decimals, models, store records)."""
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    for method in ("model_dump", "to_dict"):
        fn = getattr(value, method, None)
        if callable(fn):
            return fn()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def json_reply(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    out = {"Content-Type": JSON}
    if headers:
        out.update(headers)
    return Reply(status, dumps(value), out)


def _has_content_type(headers: dict[str, str]) -> bool:
    return any(k.lower() == "content-type" for k in headers)


def encode_body(body: Any, headers: dict[str, str], status: int = 200) -> bytes:
    """Encode a reply body, setting a Content-Type in `headers` unless one is there.

    bytes go as they are, text as text/plain, anything else as JSON; 204/304 have no body.
    """
    if status in _EMPTY_BODY_STATUSES or status < 200:
        return b""
    if isinstance(body, bytes | bytearray):
        if not _has_content_type(headers):
            headers["Content-Type"] = BINARY
        return bytes(body)
    if isinstance(body, str):
        if not _has_content_type(headers):
            headers["Content-Type"] = TEXT
        return body.encode()
    if not _has_content_type(headers):
        headers["Content-Type"] = JSON
    return dumps(body)


def result_reply(result: Any) -> Reply:
    """The reply for a handler's result: a `Response` as given, anything else as 200 JSON."""
    if isinstance(result, Response):
        headers = {str(k): str(v) for k, v in result.headers.items()} if result.headers else {}
        status = int(result.status)
        if isinstance(result.body, AsyncIterable):
            return Reply(status, b"", headers, stream=result.body)
        return Reply(status, encode_body(result.body, headers, status), headers)
    if isinstance(result, dict | list) or result is None:
        return Reply(200, dumps(result), {"Content-Type": JSON})
    headers = {}
    return Reply(200, encode_body(result, headers), headers)


def error_reply(
    status: int,
    message: str,
    request_id: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """The one error shape every HTTP failure uses."""
    error: dict[str, Any] = {"status": status, "message": message, "requestId": request_id}
    if details is not None:
        error["details"] = details
    try:
        body = dumps({"error": error})
    except TypeError:
        error["details"] = str(details)
        body = dumps({"error": error})
    out = {"Content-Type": JSON, "X-Request-ID": request_id}
    if headers:
        out.update(headers)
    return Reply(status, body, out)


def exception_reply(exc: BaseException, request_id: str, what: str = "request") -> Reply:
    """Map an exception to an error reply; server-side failures are logged, not shown.

    An `ExecutionError` with a 4xx status shows its message and details; 502/503/504 show the
    message (an upstream or timeout failure the caller should see); everything else is a bare
    500 "internal error", with the traceback logged under the request id.
    """
    if isinstance(exc, ExecutionError):
        status = exc.status
        if 400 <= status < 500:
            log.info("%s %s: %d %s", what, request_id, status, exc)
            return error_reply(status, str(exc), request_id, details=exc.details)
        if status in _USER_FACING_5XX:
            log.warning("%s %s: %d %s", what, request_id, status, exc)
            return error_reply(status, str(exc), request_id)
    log.error("%s %s failed", what, request_id, exc_info=exc)
    return error_reply(500, "internal error", request_id)
