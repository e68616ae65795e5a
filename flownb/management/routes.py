"""The management API's operations and their handlers (`ManagementApi`).

Each operation is declared once in `ManagementApi.operations`: method, path, the scope its
token needs, its query and body models, its replies. The same table routes requests, checks
them and generates the OpenAPI document (`flownb.management.openapi`).

Every request needs a token (401 without one, 403 when a read token asks to change
something); query strings and bodies are checked by their models (422 naming each bad field)
and bodies are size-limited (413). Replies never carry CORS headers unless origins are
allowed explicitly (never `*`), and every reply has `Cache-Control: no-store`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from flownb import __version__
from flownb.errors import BuildError, ConfigError, ExecutionError, FlownbError, NotFoundError
from flownb.http.reply import JSON, Reply, error_reply, exception_reply, json_reply
from flownb.management import models as m
from flownb.management.tokens import Scope, Token, Tokens

if TYPE_CHECKING:
    from flownb.dynamic.registry import Component
    from flownb.history import ExecutionRecord
    from flownb.http.request import Request
    from flownb.http.server import Server
    from flownb.service import EngineService

log = logging.getLogger("flownb.management")

YAML = "application/yaml"
_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_JSON_TYPES = frozenset({"", "application/json"})
_SANE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
DEFAULT_ADDRESS = "127.0.0.1:8700"


class ApiError(ExecutionError):
    """A failure with its status, message and details, as the caller sees it."""


@dataclass
class Call:
    """One authorised request, its parameters checked."""

    request: Request
    token: Token
    params: dict[str, str]
    query: Any = None
    body: Any = None

    @property
    def actor(self) -> str:
        return f"{self.token.name} token from {self.request.remote or 'unknown'}"


Handler = Callable[[Call], Awaitable[Reply]]
Reply200 = dict[int, tuple[str, type[BaseModel] | None]]


@dataclass(frozen=True)
class Operation:
    """One route of the API, as routed, checked and documented."""

    method: str
    path: str
    summary: str
    scope: Scope
    handler: Handler
    replies: Reply200
    query: type[m.Query] | None = None
    body: type[m.Body] | Literal["config"] | None = None
    body_required: bool = True
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> pattern
    media: str = JSON  # content type of the success reply
    also: tuple[str, ...] = ()  # other content types of the success reply (e.g. YAML)
    tag: str = "service"

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


def ok(model: BaseModel, status: int = 200) -> Reply:
    return json_reply(model.model_dump(mode="json", by_alias=True), status)


def _field_errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    return [
        {"loc": [where, *e["loc"]], "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _repeated(request: Request) -> list[str]:
    """Query parameters given more than once (every parameter here takes one value)."""
    from flownb.http.request import raw_request

    query = raw_request(request).query
    return sorted(name for name in set(query) if len(query.getall(name)) > 1)


def _mime(request: Request) -> str:
    return request.headers.get("Content-Type", "").partition(";")[0].strip().lower()


class ManagementApi:
    """The management API of one `EngineService`, served on its own address."""

    def __init__(
        self,
        service: EngineService,
        *,
        tokens: Tokens,
        address: str = DEFAULT_ADDRESS,
        components_dir: str | Path | None = None,
        max_body_bytes: int = 1 << 20,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        if "*" in allowed_origins:
            raise FlownbError("the management API never allows every origin ('*'); list them")
        self.service = service
        self.tokens = tokens
        self.address = address
        base = Path(service.path).resolve().parent if service.path else Path.cwd()
        self.components_dir = Path(components_dir) if components_dir else base / "components"
        self.max_body_bytes = max_body_bytes
        self.allowed_origins = frozenset(allowed_origins)
        self.operations = self._operations()
        self._server: Server | None = None

    # --- serving ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise FlownbError("the management API is not started")
        return self._server.url

    async def start(self) -> None:
        from flownb.http.address import split_address
        from flownb.http.request import Limits
        from flownb.http.router import Router
        from flownb.http.server import Server

        host, port = split_address(self.address)
        router = Router()
        for op in self.operations:
            router.add(op.method, op.path, self._endpoint(op))
        server = Server(host, port, limits=Limits(self.max_body_bytes, 30.0))
        server.mount(router)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def openapi(self) -> dict[str, Any]:
        from flownb.management.openapi import document

        return document(self.operations)

    # --- the request pipeline ----------------------------------------------------------------
    def _endpoint(self, op: Operation) -> Callable[[Request], Awaitable[Reply]]:
        patterns = {name: re.compile(p) for name, p in op.params.items()}

        async def endpoint(request: Request) -> Reply:
            incoming = request.headers.get("X-Request-ID")
            if incoming is not None and _SANE_ID.match(incoming):
                request.id = incoming
            reply = await self._answer(op, patterns, request)
            headers = reply.headers
            headers["Cache-Control"] = "no-store"
            headers["X-Request-ID"] = request.id
            headers["X-Content-Type-Options"] = "nosniff"
            origin = request.headers.get("Origin")
            if origin is not None and origin in self.allowed_origins:
                headers["Access-Control-Allow-Origin"] = origin
                headers["Vary"] = "Origin"
            return reply

        return endpoint

    async def _answer(
        self, op: Operation, patterns: dict[str, re.Pattern[str]], request: Request
    ) -> Reply:
        token = self.tokens.check(request.headers.get("Authorization"))
        if token is None:
            return error_reply(
                401,
                "a token is required: send Authorization: Bearer TOKEN",
                request.id,
                headers={"WWW-Authenticate": 'Bearer realm="flownb"'},
            )
        if not token.allows(op.scope):
            return error_reply(
                403, f"the {token.scope} token cannot {op.method} {op.path}", request.id
            )
        try:
            for name, pattern in patterns.items():
                if not pattern.match(request.params.get(name, "")):
                    raise ApiError(f"{name} {request.params.get(name)!r} is not valid", status=404)
            call = Call(request, token, request.params)
            repeated = _repeated(request)
            if repeated:
                raise ApiError(
                    f"query parameters given more than once: {', '.join(repeated)}",
                    status=422,
                    details=[{"loc": ["query", k], "message": "repeated"} for k in repeated],
                )
            if op.query is not None:
                try:
                    call.query = op.query.model_validate(request.query)
                except ValidationError as exc:
                    raise ApiError(
                        "invalid query parameters", status=422, details=_field_errors(exc, "query")
                    ) from None
            elif request.query:
                raise ApiError(
                    f"{op.method} {op.path} takes no query parameters",
                    status=422,
                    details=[{"loc": ["query", k], "message": "unknown"} for k in request.query],
                )
            if op.body is not None:
                call.body = await self._body(op, request)
            return await op.handler(call)
        except Exception as exc:
            return exception_reply(exc, request.id, "management API")

    async def _body(self, op: Operation, request: Request) -> Any:
        mime = _mime(request)
        data = await request.read_body()  # 413 past the size limit, 400 on malformed JSON
        if op.body == "config":
            if data is None:
                raise ApiError("send the config: a JSON object or YAML text", status=422)
            if mime in _YAML_TYPES or mime.startswith("text/"):
                text = (
                    data if isinstance(data, str) else request.raw_body.decode("utf-8", "replace")
                )
                try:
                    shape = yaml.safe_load(text)
                except yaml.YAMLError:
                    shape = {}  # the loader reports it with its line and column
                if not isinstance(shape, dict):
                    raise ApiError("the config must be a YAML mapping (modules:, ...)", status=422)
                return text
            if mime not in _JSON_TYPES and not mime.endswith("+json"):
                raise ApiError(
                    f"send the config as application/json or application/yaml, not {mime}",
                    status=415,
                )
            if not isinstance(data, dict):
                raise ApiError("the config must be a JSON object", status=422)
            return data
        model = op.body
        assert model is not None
        if data is None and not request.raw_body.strip():
            if op.body_required:
                raise ApiError("this request needs a JSON body", status=422)
            return model()
        if mime not in _JSON_TYPES and not mime.endswith("+json"):
            raise ApiError(f"send application/json, not {mime}", status=415)
        if not isinstance(data, dict):
            raise ApiError("the body must be a JSON object", status=422)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ApiError("invalid body", status=422, details=_field_errors(exc, "body")) from None

    # --- the operations ----------------------------------------------------------------------
    def _operations(self) -> list[Operation]:
        e401: Reply200 = {401: ("no token or an unknown one", m.ErrorOut)}
        e403 = {403: ("the token may only read", m.ErrorOut)}
        e404 = {404: ("not found", m.ErrorOut)}
        e409 = {409: ("the request conflicts with the service's state", m.ErrorOut)}
        e422 = {422: ("invalid parameters or body (each field named)", m.ErrorOut)}
        body_errors = {
            400: ("malformed JSON", m.ErrorOut),
            413: ("the body is too large", m.ErrorOut),
            415: ("unsupported content type", m.ErrorOut),
            **e422,
        }
        name = {"name": m.NAME_PATTERN}
        letter = {"id": m.ID_PATTERN}
        return [
            Operation(
                "GET",
                "/api/status",
                "The service: state, revision, modules, servers, history",
                "read",
                self._status,
                {200: ("the status", m.StatusOut), **e401},
            ),
            Operation(
                "GET",
                "/api/config",
                "The running config (JSON, or YAML with format=yaml)",
                "read",
                self._get_config,
                {200: ("the config", m.ConfigOut), **e401, **e422},
                query=m.ConfigQuery,
                also=(YAML,),
                tag="config",
            ),
            Operation(
                "PUT",
                "/api/config",
                "Replace the config: validate, reload (and save)",
                "write",
                self._put_config,
                {
                    200: ("validated (and applied)", m.PutConfigOut),
                    **e401,
                    **e403,
                    **e409,
                    **body_errors,
                },
                query=m.PutConfigQuery,
                body="config",
                tag="config",
            ),
            Operation(
                "POST",
                "/api/config/validate",
                "Validate a config without applying it",
                "read",
                self._validate,
                {200: ("the verdict and every problem", m.ValidateOut), **e401, **body_errors},
                body="config",
                tag="config",
            ),
            Operation(
                "POST",
                "/api/reload",
                "Reload: the config file read again, swapped in live",
                "write",
                self._reload,
                {200: ("reloaded", m.ReloadOut), **e401, **e403, **e409, **body_errors},
                body=m.ReloadIn,
                body_required=False,
                tag="config",
            ),
            Operation(
                "GET",
                "/api/module-types",
                "Every module type with its config schema",
                "read",
                self._module_types,
                {200: ("the types", m.ModuleTypesOut), **e401},
                tag="modules",
            ),
            Operation(
                "GET",
                "/api/module-types/{name}",
                "One module type with its config schema",
                "read",
                self._module_type,
                {200: ("the type", m.ModuleTypeOut), **e401, **e404},
                params={"name": m.TYPE_PATTERN},
                tag="modules",
            ),
            Operation(
                "GET",
                "/api/executions",
                "Recorded executions, newest first",
                "read",
                self._executions,
                {200: ("the executions", m.ExecutionsOut), **e401, **e409, **e422},
                query=m.ExecutionsQuery,
                tag="history",
            ),
            Operation(
                "GET",
                "/api/executions/{id}",
                "One execution with its steps",
                "read",
                self._execution,
                {200: ("the execution", m.ExecutionOut), **e401, **e404, **e409},
                params=letter,
                tag="history",
            ),
            Operation(
                "GET",
                "/api/audit",
                "The audit log: config changes and reloads, newest first",
                "read",
                self._audit,
                {200: ("the events", m.AuditOut), **e401, **e409, **e422},
                query=m.AuditQuery,
                tag="history",
            ),
            Operation(
                "GET",
                "/api/components",
                "Dynamic components: running and on disk",
                "read",
                self._components,
                {200: ("the components", m.ComponentsOut), **e401},
                tag="components",
            ),
            Operation(
                "GET",
                "/api/components/{name}",
                "One component with its source",
                "read",
                self._component,
                {200: ("the component", m.ComponentDetail), **e401, **e404},
                params=name,
                tag="components",
            ),
            Operation(
                "PUT",
                "/api/components/{name}",
                "Create or replace a component (checked; swapped in live if running)",
                "write",
                self._put_component,
                {
                    200: ("replaced", m.ComponentOut),
                    201: ("created", m.ComponentOut),
                    **e401,
                    **e403,
                    **e404,
                    **body_errors,
                },
                body=m.ComponentIn,
                params=name,
                tag="components",
            ),
            Operation(
                "DELETE",
                "/api/components/{name}",
                "Delete a component file no module runs",
                "write",
                self._delete_component,
                {204: ("deleted", None), **e401, **e403, **e404, **e409},
                params=name,
                tag="components",
            ),
            Operation(
                "GET",
                "/api/dead-letters",
                "Dead letters (undelivered work), newest first",
                "read",
                self._dead_letters,
                {200: ("the letters", m.DeadLettersOut), **e401, **e422},
                query=m.DeadLettersQuery,
                tag="dead letters",
            ),
            Operation(
                "GET",
                "/api/dead-letters/{id}",
                "One dead letter",
                "read",
                self._dead_letter,
                {200: ("the letter", m.DeadLetterOut), **e401, **e404},
                params=letter,
                tag="dead letters",
            ),
            Operation(
                "POST",
                "/api/dead-letters/{id}/replay",
                "Deliver a dead letter once more",
                "write",
                self._replay,
                {
                    200: ("delivered", m.ReplayOut),
                    **e401,
                    **e403,
                    **e404,
                    **e409,
                    **e422,
                    502: ("the delivery failed again; the letter stays", m.ErrorOut),
                },
                query=m.ReplayQuery,
                params=letter,
                tag="dead letters",
            ),
            Operation(
                "DELETE",
                "/api/dead-letters/{id}",
                "Forget a dead letter",
                "write",
                self._delete_dead_letter,
                {204: ("deleted", None), **e401, **e403, **e404},
                params=letter,
                tag="dead letters",
            ),
            Operation(
                "GET",
                "/metrics",
                "Prometheus metrics of the service",
                "read",
                self._metrics,
                {200: ("the text format", None), **e401},
                media="text/plain",
                tag="probes",
            ),
            Operation(
                "GET",
                "/health",
                "Module checks aggregated; 503 when unhealthy",
                "read",
                self._health,
                {
                    200: ("healthy or degraded", m.HealthOut),
                    **e401,
                    503: ("unhealthy", m.HealthOut),
                },
                tag="probes",
            ),
            Operation(
                "GET",
                "/ready",
                "Ready for traffic; 503 while starting or draining",
                "read",
                self._ready,
                {200: ("ready", m.ProbeOut), **e401, 503: ("not ready", m.ProbeOut)},
                tag="probes",
            ),
            Operation(
                "GET",
                "/live",
                "The process answers",
                "read",
                self._live,
                {200: ("alive", m.ProbeOut), **e401},
                tag="probes",
            ),
            Operation(
                "GET",
                "/api/openapi.json",
                "This document",
                "read",
                self._openapi,
                {200: ("the OpenAPI document", None), **e401},
                tag="service",
            ),
        ]

    # --- service -----------------------------------------------------------------------------
    async def _status(self, call: Call) -> Reply:
        data = self.service.status()
        data["version"] = __version__
        data["history"] = self._history_info()
        return ok(m.StatusOut.model_validate(data))

    def _history_info(self) -> dict[str, Any]:
        store = self.service.history
        if store is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "database": getattr(store, "display", None),
            "queued": getattr(store, "queued", 0),
            "dropped": getattr(store, "dropped", 0),
            "lastError": getattr(store, "last_error", None),
        }

    async def _openapi(self, call: Call) -> Reply:
        return json_reply(self.openapi())

    # --- config ------------------------------------------------------------------------------
    async def _get_config(self, call: Call) -> Reply:
        from flownb.loader import dump_config

        text = dump_config(self.service.config)
        if call.query.format == "yaml":
            return Reply(200, text.encode(), {"Content-Type": YAML})
        config = yaml.safe_load(text) or {}
        return ok(
            m.ConfigOut(revision=self.service.revision, path=self.service.path, config=config)
        )

    def _parse(self, source: str | dict[str, Any]) -> Any:
        try:
            return self.service.parse(source)
        except ConfigError as exc:
            count = len(exc.diagnostics)
            raise ApiError(
                f"the config has {count} problem{'s' if count != 1 else ''}",
                status=422,
                details=[d.to_dict() for d in exc.diagnostics],
            ) from None
        except FlownbError as exc:
            raise ApiError(str(exc), status=422) from None

    async def _put_config(self, call: Call) -> Reply:
        from flownb.service import config_diff, diff_summary

        config = self._parse(call.body)
        changes = config_diff(self.service.config, config)
        reload = None
        if call.query.reload:
            reload = await self._do_reload(call, config, "PUT /api/config")
        saved = False
        if call.query.save:
            try:
                self.service.save(config)
            except (FlownbError, OSError) as exc:
                raise ApiError(f"could not save the config: {exc}", status=409) from None
            self.service.audit(
                call.actor, "config.save", self.service.path or "", diff_summary(changes)
            )
            saved = True
        out = m.PutConfigOut(
            valid=True,
            reloaded=reload is not None,
            saved=saved,
            summary=diff_summary(changes),
            changes=changes,
            reload=None if reload is None else m.ReloadOut.model_validate(reload.to_dict()),
        )
        return ok(out)

    async def _validate(self, call: Call) -> Reply:
        try:
            config = self.service.parse(call.body)
        except ConfigError as exc:
            errors = [m.DiagnosticOut.model_validate(d.to_dict()) for d in exc.diagnostics]
            count = len(errors)
            summary = f"{count} problem{'s' if count != 1 else ''}"
            return ok(m.ValidateOut(valid=False, errors=errors, summary=summary))
        except FlownbError as exc:
            error = m.DiagnosticOut(path="(root)", message=str(exc))
            return ok(m.ValidateOut(valid=False, errors=[error], summary="1 problem"))
        summary = f"valid: {len(config.modules)} modules, {len(config.pipelines)} pipelines"
        return ok(m.ValidateOut(valid=True, errors=[], summary=summary))

    async def _reload(self, call: Call) -> Reply:
        reason = call.body.reason if call.body is not None else None
        config = None
        if self.service.path is None:
            config = self.service.config  # nothing to read again: rebuild what runs
        else:
            try:
                config = self.service.read_file()
            except ConfigError as exc:
                raise ApiError(
                    f"{self.service.path} does not validate; the running config goes on",
                    status=422,
                    details=[d.to_dict() for d in exc.diagnostics],
                ) from None
        result = await self._do_reload(call, config, reason or "POST /api/reload")
        return ok(m.ReloadOut.model_validate(result.to_dict()))

    async def _do_reload(self, call: Call, config: Any, reason: str) -> Any:
        try:
            return await self.service.reload(config, actor=call.actor, reason=reason)
        except ConfigError as exc:
            raise ApiError(
                "the config does not validate",
                status=422,
                details=[d.to_dict() for d in exc.diagnostics],
            ) from None
        except (BuildError, FlownbError, OSError) as exc:
            if isinstance(exc, ExecutionError) and exc.status < 500:
                raise
            raise ApiError(
                f"the new config could not start, the running one goes on: {exc}", status=409
            ) from None

    # --- module types ------------------------------------------------------------------------
    async def _module_types(self, call: Call) -> Reply:
        return json_reply(self.service.registry.json_schema())

    async def _module_type(self, call: Call) -> Reply:
        name = call.params["name"]
        if name not in self.service.registry:
            raise NotFoundError(f"no module type {name!r}")
        return json_reply(self.service.registry.get(name).schema())

    # --- history -----------------------------------------------------------------------------
    def _store(self) -> Any:
        store = self.service.history
        if store is None:
            raise ApiError(
                "this service records no history (started with --no-history)", status=409
            )
        return store

    @staticmethod
    def _record(record: ExecutionRecord) -> m.ExecutionOut:
        return m.ExecutionOut.model_validate(record.to_dict())

    async def _executions(self, call: Call) -> Reply:
        q = call.query
        records = await self._store().query(
            limit=q.limit,
            status=q.status,
            workflow=q.workflow,
            action=q.action,
            request_id=q.request_id,
            before=q.before,
        )
        return ok(m.ExecutionsOut(executions=[self._record(r) for r in records]))

    async def _execution(self, call: Call) -> Reply:
        record = await self._store().get(call.params["id"])
        if record is None:
            raise NotFoundError(f"no execution {call.params['id']!r} in the history")
        return ok(self._record(record))

    async def _audit(self, call: Call) -> Reply:
        events = await self._store().audit_events(limit=call.query.limit, before=call.query.before)
        return ok(m.AuditOut(events=[m.AuditEventOut.model_validate(e.to_dict()) for e in events]))

    # --- components --------------------------------------------------------------------------
    def _running_components(self) -> dict[str, tuple[str, Component]]:
        """name -> (module, component) for every dynamic component of the running engine."""
        from flownb.modules.dynamic import DynamicComponent

        engine = self.service.engine
        found: dict[str, tuple[str, Component]] = {}
        if engine is not None:
            for module in engine.modules.values():
                if isinstance(module, DynamicComponent) and hasattr(module, "component"):
                    found[module.component.name] = (module.name, module.component)
        return found

    def _file(self, name: str) -> Path:
        return self.components_dir / f"{name}.py"

    @staticmethod
    def _info(module: str | None, component: Component) -> dict[str, Any]:
        return {**component.info().to_dict(), "module": module}

    def _file_info(self, name: str, file: Path) -> dict[str, Any]:
        return {
            "name": name,
            "state": "unloaded",
            "version": 0,
            "origin": str(file),
            "trusted": False,
            "reason": None,
            "lastError": None,
            "module": None,
        }

    async def _components(self, call: Call) -> Reply:
        running = self._running_components()
        items = [m.ComponentOut.model_validate(self._info(mod, c)) for mod, c in running.values()]
        if self.components_dir.is_dir():
            for file in sorted(self.components_dir.glob("*.py")):
                if file.stem not in running and re.match(m.NAME_PATTERN, file.stem):
                    items.append(m.ComponentOut.model_validate(self._file_info(file.stem, file)))
        items.sort(key=lambda c: c.name)
        return ok(m.ComponentsOut(components=items, directory=str(self.components_dir)))

    async def _component(self, call: Call) -> Reply:
        name = call.params["name"]
        running = self._running_components().get(name)
        if running is not None:
            module, component = running
            detail = {**self._info(module, component), "source": component.source.text}
        else:
            file = self._file(name)
            if not file.is_file():
                raise NotFoundError(f"no component {name!r}")
            detail = {**self._file_info(name, file), "source": file.read_text(encoding="utf-8")}
        return ok(m.ComponentDetail.model_validate(detail))

    async def _put_component(self, call: Call) -> Reply:
        from flownb.dynamic.contract import DEFAULT_IMPORTS, CheckError, Source, declared_name
        from flownb.dynamic.loader import validate

        name, text = call.params["name"], call.body.source
        declared = declared_name(text)
        if declared is not None and declared != name:
            raise ApiError(f"the source declares name = {declared!r}, not {name!r}", status=422)
        running = self._running_components().get(name)
        file = running[1].source.path if running and running[1].source.path else self._file(name)
        imports = running[1].options.imports if running else DEFAULT_IMPORTS
        source = Source(name, text, str(file), file.resolve())
        try:
            if running is None or running[1].options.check:
                validate(source, imports)
            else:
                compile(text, str(file), "exec")
        except CheckError as exc:
            raise ApiError(
                f"component {name!r} failed its check", status=422, details=exc.lines()
            ) from None
        except SyntaxError as exc:
            raise ApiError(f"component {name!r}: {exc}", status=422) from None
        if running is not None:
            component = running[1]
            if not await component.replace(source):
                raise ApiError(
                    f"component {name!r}: the new version did not start; the old one serves on",
                    status=422,
                    details=component.last_error,
                )
        _write(file, text)
        self.service.audit(call.actor, "component.put", str(file), f"{name}: {len(text)} bytes")
        if running is not None:
            return ok(m.ComponentOut.model_validate(self._info(running[0], running[1])))
        return ok(m.ComponentOut.model_validate(self._file_info(name, file)), 201)

    async def _delete_component(self, call: Call) -> Reply:
        name = call.params["name"]
        running = self._running_components().get(name)
        if running is not None:
            raise ApiError(
                f"component {name!r} is run by module {running[0]!r}; remove the module from "
                "the config and reload first",
                status=409,
            )
        file = self._file(name)
        if not file.is_file():
            raise NotFoundError(f"no component {name!r}")
        file.unlink()
        self.service.audit(call.actor, "component.delete", str(file), name)
        return Reply(204)

    # --- dead letters ------------------------------------------------------------------------
    @staticmethod
    def _letter(letter: Any) -> m.DeadLetterOut:
        return m.DeadLetterOut.model_validate(letter.to_dict())

    async def _dead_letters(self, call: Call) -> Reply:
        q = call.query
        letters = await self.service.stores.dead_letters.list(
            kind=q.kind, source=q.source, include_replayed=q.include_replayed, limit=q.limit
        )
        return ok(m.DeadLettersOut(dead_letters=[self._letter(d) for d in letters]))

    async def _dead_letter(self, call: Call) -> Reply:
        letter = await self.service.stores.dead_letters.get(call.params["id"])
        if letter is None:
            raise NotFoundError(f"no dead letter {call.params['id']!r}")
        return ok(self._letter(letter))

    async def _replay(self, call: Call) -> Reply:
        from flownb.deadletters import replay_dead_letter
        from flownb.errors import UnknownNameError

        engine = self.service.engine
        if engine is None:
            raise ApiError("the service is not running", status=409)
        letter_id = call.params["id"]
        try:
            letter, outcome = await replay_dead_letter(engine, letter_id, force=call.query.force)
        except UnknownNameError as exc:
            raise ApiError(str(exc), status=409) from None
        except ExecutionError as exc:
            if exc.status < 500:
                raise
            raise ApiError(f"the replay failed: {exc}", status=502, details=exc.details) from None
        self.service.audit(call.actor, "deadletter.replay", letter.target, letter_id)
        return ok(m.ReplayOut(dead_letter=self._letter(letter), outcome=_jsonable(outcome)))

    async def _delete_dead_letter(self, call: Call) -> Reply:
        if not await self.service.stores.dead_letters.delete(call.params["id"]):
            raise NotFoundError(f"no dead letter {call.params['id']!r}")
        self.service.audit(call.actor, "deadletter.delete", "", call.params["id"])
        return Reply(204)

    # --- probes ------------------------------------------------------------------------------
    async def _metrics(self, call: Call) -> Reply:
        from flownb.metrics import CONTENT_TYPE

        return Reply(200, self.service.metrics.exposition(), {"Content-Type": CONTENT_TYPE})

    async def _health(self, call: Call) -> Reply:
        engine = self.service.engine
        if engine is None:
            out: dict[str, Any] = {"status": "unhealthy", "state": self.service.state, "checks": {}}
            return json_reply(out, 503)
        report = await engine.health()
        return json_reply(report.to_dict(), report.http_status)

    async def _ready(self, call: Call) -> Reply:
        from flownb.health import ready

        engine = self.service.engine
        is_ready = ready(engine) and self.service.state in ("running", "reloading")
        state = engine.state if engine is not None else self.service.state
        body = {"status": "ready" if is_ready else "not ready", "state": state}
        return json_reply(body, 200 if is_ready else 503)

    async def _live(self, call: Call) -> Reply:
        return json_reply({"status": "alive", "state": self.service.state})


def _jsonable(value: Any) -> Any:
    from flownb.history import json_value

    return json_value(value, 1 << 16)


def _write(file: Path, text: str) -> None:
    """Write `file` by renaming a finished copy over it (a watcher never sees half a file)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(f".{file.name}.{time.time_ns()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(file)
