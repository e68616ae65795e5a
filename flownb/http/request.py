"""The request view: what `ctx.request` is during an HTTP execution, and `request` in templates.

It wraps aiohttp's request and parses lazily: the query on first use, the body only when the
endpoint asks for it (after middlewares such as auth or rate limiting had their say), and the
request id only when someone needs one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl

import orjson

from flownb.errors import ExecutionError
from flownb.execution import execution_id

if TYPE_CHECKING:
    from aiohttp.web import BaseRequest
    from multidict import CIMultiDictProxy

_FORM = "application/x-www-form-urlencoded"
_JSON_START = (b"{", b"[")
_NO_BODY = object()


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-server limits on reading a request body."""

    max_body_bytes: int = 1 << 20
    read_timeout: float | None = 30.0


DEFAULT_LIMITS = Limits()


class Request:
    """One HTTP request, read-only to templates (attributes, no mutating methods).

    `body` is parsed JSON (None when empty), a dict for form posts, else the text; `raw_body`
    is the bytes. `user` is set by an auth middleware; `id` by the requestid middleware, or
    generated on first use.
    """

    # What templates may read; `flownb.expressions` reads these without the sandbox's slower
    # checks (they are plain data), anything else still goes through the sandbox.
    template_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "method",
            "path",
            "route",
            "params",
            "query",
            "headers",
            "remote",
            "id",
            "body",
            "raw_body",
            "user",
        }
    )

    __slots__ = (
        "_body",
        "_id",
        "_limits",
        "_query",
        "_raw",
        "method",
        "params",
        "path",
        "raw_body",
        "route",
        "user",
    )

    def __init__(
        self,
        raw: BaseRequest,
        route: str,
        params: dict[str, str],
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._raw = raw
        self._limits = limits
        self.method: str = raw.method
        self.path: str = raw.path
        self.route = route
        self.params = params
        self._query: dict[str, str] | None = None
        self._body: Any = _NO_BODY
        self._id: str | None = None
        self.raw_body = b""
        self.user: Any = None

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, the first value of each key."""
        query = self._query
        if query is None:
            query = self._query = dict(self._raw.query)
        return query

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """Request headers, case-insensitive."""
        return self._raw.headers

    @property
    def remote(self) -> str | None:
        """The client's address."""
        return self._raw.remote

    @property
    def id(self) -> str:
        rid = self._id
        if rid is None:
            rid = self._id = execution_id()
        return rid

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    @property
    def body(self) -> Any:
        return None if self._body is _NO_BODY else self._body

    async def read_body(self) -> Any:
        """Read and parse the body once; 413 over the size limit, 400 on malformed JSON."""
        if self._body is not _NO_BODY:
            return self._body
        raw = self._raw
        if not raw.body_exists:
            self._body = None
            return None
        limit = self._limits.max_body_bytes
        length = raw.content_length
        if length is not None and length > limit:
            raise _too_large(limit)
        timeout = self._limits.read_timeout
        try:
            async with asyncio.timeout(timeout):
                data = await _read_limited(raw, limit)
        except TimeoutError:
            raise ExecutionError(
                f"the request body was not received within {timeout:g}s", status=408
            ) from None
        except (ConnectionError, _payload_error()) as exc:
            # the client went away or sent a broken encoding: its problem, not a server error
            raise ExecutionError(f"the request body could not be read: {exc}", status=400) from None
        self.raw_body = data
        self._body = parse_body(data, raw.headers.get("Content-Type", ""))
        return self._body

    async def input(self) -> Any:
        """The execution's `data`: query, then path params, then the body's keys.

        A JSON object body is merged in; any other body (a list, a scalar, text) becomes the
        data itself when there are no params or query, and goes under the key `body` otherwise.
        """
        body = await self.read_body()
        params = self.params
        query = self.query if self._raw.query_string else None
        if not params and not query:
            return {} if body is None else body
        data: dict[str, Any] = {**query, **params} if query else dict(params)
        if isinstance(body, dict):
            data.update(body)
        elif body is not None:
            data["body"] = body
        return data

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for run history and logs; credential headers are redacted."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "params": dict(self.params),
            "query": dict(self.query),
            "headers": {k: _redact(k, v) for k, v in self.headers.items()},
            "remote": self.remote,
            "body": self.body,
        }

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


def raw_request(request: Request) -> BaseRequest:
    """The aiohttp request under the view, for code that streams the body (a proxy).

    A function, not an attribute, so templates (which see the view) cannot reach it.
    """
    return request._raw


_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = ("key", "token", "secret", "password", "signature")


def _redact(name: str, value: str) -> str:
    lower = name.lower()
    if lower in _SECRET_HEADERS or any(word in lower for word in _SECRET_WORDS):
        return "[redacted]"
    return value


def _payload_error() -> type[Exception]:
    from aiohttp.web_protocol import RequestPayloadError

    return RequestPayloadError


def _too_large(limit: int) -> ExecutionError:
    return ExecutionError(f"request body is larger than {limit} bytes", status=413)


async def _read_limited(raw: BaseRequest, limit: int) -> bytes:
    content = raw.content
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_body(data: bytes, content_type: str) -> Any:
    """JSON for JSON content types (and for bodies that start like JSON when the type is
    missing or a form, which is what `curl -d` sends); form fields as a dict; else the text.
    """
    if not data:
        return None
    mime = content_type.partition(";")[0].strip().lower()
    is_json = mime == "application/json" or mime.endswith("+json")
    if not is_json and mime in ("", _FORM) and data.lstrip()[:1] in _JSON_START:
        is_json = True
    if is_json:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ExecutionError(f"malformed JSON body: {exc}", status=400) from None
    text = data.decode("utf-8", errors="replace")
    if mime == _FORM:
        form: dict[str, str] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            form.setdefault(key, value)
        return form
    return text
