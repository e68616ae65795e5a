"""HTTP module types: `http.server` (a listener), `http.router` (a route table) and
`http.handler` (a pipeline, a Python function or inline steps that answer a route).

Routes are added by the http workflow and the http trigger (`workflows.http`,
`triggers.http`); a router reaches a server through `server.mount(router)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from flownb.errors import FlownbError
from flownb.fields import Duration, Spec
from flownb.handlers import ConfiguredHandler, HandlerConfig
from flownb.http.address import split_address
from flownb.http.request import Limits
from flownb.http.router import Endpoint, Route, Router
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from flownb.engine import Engine
    from flownb.health import Check
    from flownb.http.middleware import Middleware
    from flownb.http.server import Server


# --- http.server ---------------------------------------------------------------------------
class HttpServerConfig(Spec):
    address: str = Field(
        "127.0.0.1:8080",
        description="host:port to listen on; port 0 picks a free port; write 0.0.0.0:PORT "
        "to listen on every interface (an empty host means 127.0.0.1)",
    )
    max_body_bytes: int = Field(
        1 << 20, alias="maxBodyBytes", ge=0, description="largest request body accepted (413)"
    )
    read_timeout: Duration = Field(
        Duration("30s"),
        alias="readTimeout",
        description="time allowed to receive a body (408); 0 means no limit",
    )
    keep_alive_timeout: Duration = Field(
        Duration("75s"), alias="keepAliveTimeout", description="idle keep-alive connection limit"
    )
    access_log: bool = Field(
        False, alias="accessLog", description="log every request on logger flownb.http.access"
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value


class HttpServer(Module[HttpServerConfig]):
    """Listens on `address`; after `start()`, `.host`, `.port` and `.url` say where.

    In a service (`flownb run`) the socket comes from the service's listeners: a reload's new
    engine takes over the socket of the server with the same name and address (see
    `flownb.http.listener`). With metrics on, every request is counted by route template.
    """

    _engine: Engine | None = None

    def __init__(self, name: str, config: HttpServerConfig) -> None:
        from flownb.http.server import Server  # aiohttp loads when a server is built

        super().__init__(name, config)
        host, port = split_address(config.address)
        self.server: Server = Server(
            host,
            port,
            limits=Limits(config.max_body_bytes, float(config.read_timeout) or None),
            keepalive_timeout=float(config.keep_alive_timeout),
            access_log=config.access_log,
        )

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def mount(self, router: HttpRouter) -> None:
        """Serve `router`'s routes on this server (mounting twice is harmless)."""
        self.server.mount(router.table)

    async def init(self, engine: Engine) -> None:
        self._engine = engine

    def _socket_key(self) -> str:
        """Which socket a reload hands over: the same address, or for port 0 (any free port)
        the same module and host."""
        host, port = split_address(self.config.address)
        return f"{host}:{port}" if port else f"{self.name}@{host}:0"

    async def start(self) -> None:
        engine = self._engine
        if engine is not None and engine.metrics is not None:
            self.server.observe = engine.metrics.http_request
        listeners = engine.listeners if engine is not None else None
        await self.server.start(listeners, self._socket_key())

    async def drain(self) -> None:
        await self.server.drain()

    async def stop(self) -> None:
        await self.server.stop()

    async def health(self) -> Check | None:
        from flownb.health import Check

        if self.server.serving:
            return Check.healthy(self.url)
        return Check.unhealthy(f"not listening on {self.config.address}")


# --- http.router ---------------------------------------------------------------------------
class HttpRouterConfig(Spec):
    prefix: str = Field("", description="path prefix of every route, e.g. /api")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("a prefix must start with '/', e.g. /api")
        return value


class HttpRouter(Module[HttpRouterConfig]):
    """A route table; workflows and triggers add routes, a server serves them."""

    def __init__(self, name: str, config: HttpRouterConfig) -> None:
        super().__init__(name, config)
        self.table = Router(config.prefix)

    def add(
        self,
        methods: str | Iterable[str],
        path: str,
        endpoint: Endpoint,
        *,
        middlewares: Sequence[Middleware] = (),
    ) -> Route:
        try:
            return self.table.add(methods, path, endpoint, middlewares=middlewares)
        except FlownbError as exc:
            raise FlownbError(f"router {self.name!r}: {exc}") from None


# --- http.handler ----------------------------------------------------------------------------
class HttpHandlerConfig(HandlerConfig):
    """Exactly one of `pipeline`, `function` or `steps` answers the request."""


class HttpHandler(ConfiguredHandler[HttpHandlerConfig]):
    """Answers a route with a pipeline, a Python function or inline steps."""


TYPES: list[ModuleType] = [
    ModuleType(
        "http.server",
        "HTTP",
        "HTTP listener serving the routes of one or more routers",
        HttpServerConfig,
        HttpServer,
        provides=("http.server",),
    ),
    ModuleType(
        "http.router",
        "HTTP",
        "route table (path templates, methods, middlewares) mounted on a server",
        HttpRouterConfig,
        HttpRouter,
        provides=("http.router",),
    ),
    ModuleType(
        "http.handler",
        "HTTP",
        "answers requests with a pipeline, a Python function or inline steps",
        HttpHandlerConfig,
        HttpHandler,
        provides=("handler",),
    ),
]
