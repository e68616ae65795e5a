"""The HTTP server: aiohttp's low-level server with our own dispatch, and nothing else.

aiohttp parses requests and writes replies; routing, middlewares and error replies are ours
(`web.Application` would add a second router and middleware layer on the hot path). The
socket is a `Listener` (`flownb.http.listener`): private to this server by default, or shared
through a service's `Listeners` so that a reload hands it to the new engine's server.
`drain()` detaches from the socket (closing it when no other server uses it, and asking
keep-alive connections to close after their current request); `stop()` closes what is left.
With `observe` set (metrics), every reply is reported as (method, route template, status,
seconds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from flownb.execution import new_id
from flownb.http.address import base_url
from flownb.http.reply import Reply, error_reply, exception_reply
from flownb.http.request import Limits, Request

if TYPE_CHECKING:
    from flownb.http.listener import Listener, Listeners
    from flownb.http.router import PathEntry, Route, Router

log = logging.getLogger("flownb.http")

Observe = Callable[[str, str, int, float], None]
UNMATCHED = "<unmatched>"


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
        self.observe: Observe | None = None
        self._tables: tuple[Router, ...] = ()
        self._listeners: Listeners | None = None
        self._listener: Listener | None = None
        self._closed_socket = False

    def mount(self, router: Router) -> None:
        if router not in self.routers:
            self.routers.append(router)
            self._tables = tuple(self.routers)

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    @property
    def serving(self) -> bool:
        """This server is the one its socket hands requests to, and the socket is open."""
        listener = self._listener
        return listener is not None and listener.active is self and listener.serving

    async def start(self, listeners: Listeners | None = None, key: str | None = None) -> None:
        """Listen: on a socket of `listeners` found by `key` (the address by default), taken
        over from a server of an earlier engine if one has it open, else a new one."""
        from flownb.http.listener import Listeners

        self._listeners = listeners if listeners is not None else Listeners()
        listener = await self._listeners.attach(key or f"{self.host}:{self.port}", self)
        self._listener, self._closed_socket = listener, False
        self.port = listener.port
        log.debug("listening on %s", self.url)

    async def drain(self) -> None:
        """Stop taking requests; the socket closes unless a newer server took it over."""
        listener, listeners = self._listener, self._listeners
        if listener is not None and listeners is not None and not self._closed_socket:
            self._closed_socket = listeners.detach(listener, self)
            if not self._closed_socket:
                self._listener = None  # handed over: nothing of it is ours to close

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed (by `drain` or `stop`)."""
        if self._listener is not None:
            await self._listener.closed.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        await self.drain()
        listener = self._listener
        if listener is not None and self._closed_socket:
            await listener.shutdown(timeout)
        self._listener = None

    async def dispatch(self, raw: web.BaseRequest) -> web.StreamResponse:
        """Route one request, run its endpoint chain, and write the reply."""
        observe = self.observe
        if observe is None:
            reply = (await self._reply(raw))[0]
            if reply.stream is None:
                return _response(reply)
            return await _stream(raw, reply, reply.stream)
        started = time.perf_counter()
        reply, template = await self._reply(raw)
        try:
            if reply.stream is None:
                return _response(reply)
            return await _stream(raw, reply, reply.stream)
        finally:
            observe(raw.method, template, reply.status, time.perf_counter() - started)

    async def _reply(self, raw: web.BaseRequest) -> tuple[Reply, str]:
        """The reply to `raw` and the route template that answered (or `UNMATCHED`)."""
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
            return error_reply(404, f"no route for {path}", new_id()), UNMATCHED
        template = entry.pattern.template
        if route is not None:
            endpoint = route.endpoint
        elif method == "OPTIONS":
            route = entry.preflight_route(raw.headers.get("Access-Control-Request-Method"))
            endpoint = route.preflight
        else:
            reply = error_reply(
                405,
                f"{method} is not allowed on {template}",
                new_id(),
                headers={"Allow": entry.allow},
            )
            return reply, template
        request = Request(raw, route.template, params, self.limits)
        try:
            reply = await endpoint(request)
        except Exception as exc:
            reply = exception_reply(exc, request.id)
        return reply, template


def _response(reply: Reply) -> web.Response:
    # Say "flownb", not aiohttp's default that names the Python and aiohttp versions.
    reply.headers.setdefault("Server", "flownb")
    return web.Response(body=reply.body, status=reply.status, headers=reply.headers)


async def _stream(
    raw: web.BaseRequest, reply: Reply, chunks: AsyncIterable[bytes]
) -> web.StreamResponse:
    """Write a streamed body as it comes. If the source fails part way, the connection is
    closed so the client sees a cut reply, never a short one that looks complete."""
    reply.headers.setdefault("Server", "flownb")
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    try:
        await response.prepare(raw)
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionError, asyncio.CancelledError):
        raise  # the client went away; aiohttp closes the connection
    except Exception as exc:
        log.warning("%s %s: streamed reply cut short: %s", raw.method, raw.path, exc)
        if raw.transport is not None:
            raw.transport.close()
        raise ConnectionResetError("streamed reply cut short") from exc
    finally:
        closing = getattr(chunks, "aclose", None)
        if closing is not None:
            await closing()
    await response.write_eof()
    return response
