"""The middleware contract: one small base class with one method.

A middleware implements `async __call__(request, call_next) -> Reply`: it may answer in the
endpoint's place (a 401, a 429, a CORS preflight), or call `call_next(request)` and add to
the reply on its way out. Chains are composed once, when a route is added, so a request
pays one call per middleware and nothing for walking a list.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flownb.http.reply import Reply
from flownb.http.request import Request

if TYPE_CHECKING:
    from flownb.http.router import Endpoint, PathEntry


class Middleware:
    """Base class of HTTP middlewares. Override `__call__`; keep the `call_next` keyword."""

    async def __call__(self, request: Request, call_next: Endpoint) -> Reply:
        return await call_next(request)

    def wrap(self, endpoint: Endpoint) -> Endpoint:
        """`endpoint` with this middleware around it (override to precompute more)."""
        return functools.partial(self.__call__, call_next=endpoint)


def chain(endpoint: Endpoint, middlewares: Sequence[Middleware]) -> Endpoint:
    """Compose middlewares (outermost first) around an endpoint."""
    for middleware in reversed(middlewares):
        endpoint = middleware.wrap(endpoint)
    return endpoint


def options_endpoint(entry: PathEntry) -> Endpoint:
    """The default answer to OPTIONS on a path with no OPTIONS route: 204 and `Allow`."""

    async def options(request: Request) -> Reply:
        return Reply(204, b"", {"Allow": entry.allow})

    return options
