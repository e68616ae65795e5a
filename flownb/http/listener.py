"""Listening sockets that outlive the engine that opened them, so a reload drops nothing.

A `Listener` is one listening socket with aiohttp's protocol behind it; it hands each request
to its *active* `Server` (`flownb.http.server`), whose routes belong to one engine. Servers
attach to a listener by address through `Listeners`:

- the first server to attach to an address opens the socket and is active at once;
- a server attaching to an address already open (the same `http.server` in the config that
  replaces the running one) waits: `Listeners.promote()` makes the newest server of every
  listener the active one, in one step, once its engine has started;
- a server detaching (its engine drains) hands the listener back to the newest server left;
  the last one out closes the socket.

So a reload builds and starts the new engine beside the old one (its servers attached,
waiting), promotes, then drains the old engine: requests arriving at any moment find a
listener and an active server, and keep-alive connections (they belong to the listener,
not to an engine) carry on with the new routes. A standalone `Server` uses a private
`Listeners`, which behaves as a plain socket: open on start, closed on drain.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web

from flownb.errors import FlownbError
from flownb.execution import new_id
from flownb.http.reply import error_reply

if TYPE_CHECKING:
    from flownb.http.server import Server

log = logging.getLogger("flownb.http")


class Listener:
    """One listening socket; requests go to `active`."""

    def __init__(
        self, key: str, host: str, port: int, keepalive_timeout: float, access_log: bool
    ) -> None:
        self.key = key
        self.host = host
        self.port = port
        self.keepalive_timeout = keepalive_timeout
        self.access_log = access_log
        self.servers: list[Server] = []  # attached, oldest first
        self.active: Server | None = None
        self._protocol: web.Server | None = None
        self._socket: asyncio.Server | None = None
        self.closed = asyncio.Event()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        access_log = logging.getLogger("flownb.http.access") if self.access_log else None
        protocol = web.Server(
            self._handle, loop=loop, keepalive_timeout=self.keepalive_timeout, access_log=access_log
        )
        try:
            sock = await loop.create_server(protocol, self.host, self.port)
        except OSError as exc:
            raise FlownbError(f"cannot listen on {self.host}:{self.port}: {_reason(exc)}") from None
        self._protocol, self._socket = protocol, sock
        if sock.sockets:
            self.port = sock.sockets[0].getsockname()[1]

    async def _handle(self, raw: web.BaseRequest) -> web.StreamResponse:
        server = self.active
        if server is None:  # only between the last server's drain and the socket closing
            reply = error_reply(503, "the server is shutting down", new_id())
            return web.Response(body=reply.body, status=503, headers=reply.headers)
        return await server.dispatch(raw)

    @property
    def serving(self) -> bool:
        return self._socket is not None and self._socket.is_serving()

    def attach(self, server: Server, *, active: bool) -> None:
        self.servers.append(server)
        if active or self.active is None:
            self.active = server

    def promote(self) -> None:
        if self.servers:
            self.active = self.servers[-1]

    def detach(self, server: Server) -> bool:
        """Remove `server`; True when it was the last (the socket is then closed)."""
        if server in self.servers:
            self.servers.remove(server)
        if self.active is server:
            self.active = self.servers[-1] if self.servers else None
        if self.servers:
            return False
        self.close()
        return True

    def close(self) -> None:
        """Stop accepting; open connections close after their current request."""
        if self._socket is not None:
            self._socket.close()
        if self._protocol is not None:
            self._protocol.pre_shutdown()
        self.closed.set()

    async def shutdown(self, timeout: float) -> None:
        """Close what is left (after `close`), waiting up to `timeout` for connections."""
        if self._protocol is not None:
            await self._protocol.shutdown(timeout)
            self._protocol = None
        if self._socket is not None:
            await self._socket.wait_closed()
            self._socket = None


class Listeners:
    """The listeners of one service by address key, shared by its successive engines."""

    def __init__(self) -> None:
        self._by_key: dict[str, Listener] = {}

    async def attach(self, key: str, server: Server) -> Listener:
        """The listener for `key`, opened for `server` if new; else `server` waits for
        `promote()`."""
        listener = self._by_key.get(key)
        if listener is not None and listener.servers:
            listener.attach(server, active=False)
            return listener
        listener = Listener(
            key, server.host, server.port, server.keepalive_timeout, server.access_log
        )
        await listener.open()
        listener.attach(server, active=True)
        self._by_key[key] = listener
        return listener

    def promote(self) -> None:
        """Make the newest server of each listener its active one (after an engine started)."""
        for listener in self._by_key.values():
            listener.promote()

    def detach(self, listener: Listener, server: Server) -> bool:
        """Detach `server`; True when it closed the listener."""
        last = listener.detach(server)
        if last and self._by_key.get(listener.key) is listener:
            del self._by_key[listener.key]
        return last

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Listener]:
        return iter(list(self._by_key.values()))


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return (exc.strerror or str(exc)).lower()
