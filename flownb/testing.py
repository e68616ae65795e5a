"""Test harness: run a config on real sockets and talk to it over HTTP.

```python
async with run_engine(YAML, functions={"boom": boom}) as h:
    reply = await h.client.get("/hello")
```

Write servers in test configs with `address: 127.0.0.1:0` (a free port); `h.url()` says
where they ended up.

`FakeAnthropic` and `Reply` (a scripted Anthropic Messages API on loopback, for AI
generation) live in `flownb.testing_ai` and are importable from here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from flownb.config import Config
from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.loader import parse_config

if TYPE_CHECKING:
    from flownb.modules.http import HttpServer


class Harness:
    """A running engine, its HTTP servers' URLs, and an HTTP client for the default one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._client: httpx.AsyncClient | None = None

    def servers(self) -> dict[str, HttpServer]:
        from flownb.modules.http import HttpServer

        return {n: m for n, m in self.engine.modules.items() if isinstance(m, HttpServer)}

    def url(self, server: str | None = None) -> str:
        """Base URL of http.server `server`; of the only one when not named."""
        servers = self.servers()
        if server is not None:
            if server not in servers:
                raise FlownbError(
                    f"no http.server named {server!r} (servers: {', '.join(servers) or 'none'})"
                )
            return servers[server].url
        if len(servers) != 1:
            raise FlownbError(
                f"name the server: the config has {len(servers)} http.server modules"
                + (f" ({', '.join(servers)})" if servers else "")
            )
        return next(iter(servers.values())).url

    @property
    def client(self) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` whose base URL is the only http.server's."""
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url(), timeout=10.0)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@asynccontextmanager
async def run_engine(
    config: Config | str,
    *,
    environ: Mapping[str, str] | None = None,
    **engine_kwargs: Any,
) -> AsyncIterator[Harness]:
    """Parse (if YAML text), build and start an engine; stop it and close clients on exit.

    `environ` is what `${VAR}` in YAML text expands from (default: the process environment);
    other keyword arguments go to `Engine` (`functions`, `registry`, `stores`...). The drain
    timeout defaults to 5 s so a stuck test fails fast.
    """
    if isinstance(config, str):
        config = parse_config(config, registry=engine_kwargs.get("registry"), environ=environ)
    engine_kwargs.setdefault("drain_timeout", 5.0)
    engine = Engine(config, **engine_kwargs)
    await engine.start()
    harness = Harness(engine)
    try:
        yield harness
    finally:
        await harness.aclose()
        await engine.stop()


def __getattr__(name: str) -> Any:
    """`FakeAnthropic`, `Reply`, `Request`: the fake AI server, loaded on first use."""
    if name in ("FakeAnthropic", "Reply", "Request"):
        from flownb import testing_ai

        return getattr(testing_ai, name)
    raise AttributeError(f"module 'flownb.testing' has no attribute {name!r}")
