"""A real HTTP server on 127.0.0.1:0 that answers from a script, for outgoing-call tests.

`script` lists what to answer, in order: a status code, `(status, headers)`, or "hang" (never
answer: the caller's timeout fires). When the script runs out, `default` answers. Every request
is kept in `seen`; `wait_for(n)` waits (with a timeout) until n requests arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = int | str | tuple[int, dict[str, str]]


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    url: str = ""
    script: list[Answer] = field(default_factory=list)
    default: Answer = 200
    seen: list[Seen] = field(default_factory=list)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                await self._arrived.wait()
                self._arrived.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, request.query_string, dict(request.headers), body)
        )
        self._arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await self._release.wait()
            return web.Response(status=599)
        status, headers = answer if isinstance(answer, tuple) else (int(answer), {})
        payload: dict[str, Any] = {"status": status, "path": request.path}
        return web.json_response(payload, status=status, headers=headers)


@asynccontextmanager
async def serve(target: Target) -> AsyncIterator[Target]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.url = f"http://127.0.0.1:{port}"
    try:
        yield target
    finally:
        target._release.set()
        await runner.cleanup()
