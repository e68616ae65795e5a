"""The HTTP listener: aiohttp's low-level server with our own dispatch, and nothing else.

aiohttp parses requests and writes replies; routing, middlewares and error replies are ours
(`web.Application` would add a second router and middleware layer on the hot path).
`drain()` closes the listening socket and asks keep-alive connections to close once their
current request is answered; `stop()` closes what is left.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from flownb.errors import FlownbError
from flownb.execution import new_id
from flownb.http.address import base_url
from flownb.http.reply import Reply, error_reply, exception_reply
from flownb.http.request import Limits, Request

if TYPE_CHECKING:
    from flownb.http.router import PathEntry, Route, Router

log = logging.getLogger("flownb.http")


class Server:
    """Serves mounted routers on one address. One server may serve several routers."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        limits: Limits | None = None,
        keepalive_timeout: float = 75.0,
        access_log: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.keepalive_timeout = keepalive_timeout
        self.access_log = access_log
        self.routers: list[Router] = []
        self._tables: tuple[Router, ...] = ()
        self._protocol: web.Server | None = None
        self._listener: asyncio.Server | None = None
        self._closed = asyncio.Event()

    def mount(self, router: Router) -> None:
        if router not in self.routers:
            self.routers.append(router)
            self._tables = tuple(self.routers)

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    @property
    def serving(self) -> bool:
        return self._listener is not None and self._listener.is_serving()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        access_log = logging.getLogger("flownb.http.access") if self.access_log else None
        protocol = web.Server(
            self.dispatch,
            loop=loop,
            keepalive_timeout=self.keepalive_timeout,
            access_log=access_log,
        )
        try:
            listener = await loop.create_server(protocol, self.host, self.port)
        except OSError as exc:
            raise FlownbError(f"cannot listen on {self.host}:{self.port}: {_reason(exc)}") from None
        self._protocol, self._listener = protocol, listener
        self._closed.clear()
        sockets = listener.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.debug("listening on %s", self.url)

    async def drain(self) -> None:
        """Stop accepting connections; open ones close after their current request."""
        if self._listener is not None:
            self._listener.close()
        if self._protocol is not None:
            self._protocol.pre_shutdown()
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed (by `drain` or `stop`)."""
        await self._closed.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        await self.drain()
        if self._protocol is not None:
            await self._protocol.shutdown(timeout)
            self._protocol = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    async def dispatch(self, raw: web.BaseRequest) -> web.StreamResponse:
        """Route one request, run its endpoint chain, and write the reply."""
        path, method = raw.path, raw.method
        entry: PathEntry | None = None
        params: dict[str, str] = {}
        route: Route | None = None
        for table in self._tables:  # the first router serving path and method wins
            found = table.lookup(path)
            if found is not None:
                route = found[0].route_for(method)
                if entry is None or route is not None:
                    entry, params = found
                if route is not None:
                    break
        if entry is None:
            return _response(error_reply(404, f"no route for {path}", new_id()))
        if route is not None:
            endpoint = route.endpoint
        elif method == "OPTIONS":
            route = entry.preflight_route(raw.headers.get("Access-Control-Request-Method"))
            endpoint = route.preflight
        else:
            reply = error_reply(
                405,
                f"{method} is not allowed on {entry.pattern.template}",
                new_id(),
                headers={"Allow": entry.allow},
            )
            return _response(reply)
        request = Request(raw, route.template, params, self.limits)
        try:
            reply = await endpoint(request)
        except Exception as exc:
            reply = exception_reply(exc, request.id)
        return _response(reply)


def _response(reply: Reply) -> web.Response:
    # Say "flownb", not aiohttp's default that names the Python and aiohttp versions.
    reply.headers.setdefault("Server", "flownb")
    return web.Response(body=reply.body, status=reply.status, headers=reply.headers)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return (exc.strerror or str(exc)).lower()
