"""`workflows.integration`: steps calling external systems through named connectors.

A run starts at the first step (action `run`) or at a named step, and follows `onSuccess`
(default: the next step in the list) until the list ends. A step's request is built from
templates over `data` (the run's input), `steps` (earlier results by name) and `vars`; its
result is the response body, or what `transform` (an expression over `response`, `data`,
`steps`) makes of it. Transport errors, 5xx, 408 and 429 are retried `retryCount` times,
`retryDelay` apart; a step that still fails goes to `onError` (with `vars.error` set) or fails
the run. The whole run is one execution.

Connectors: `http` (a base URL, or an `httpclient` module: its auth, retries and rate limit),
`webhook` (action `send`), `database` (a `database.workflow` module; actions `query`,
`execute`, `insert`, `update`, `delete`, whose input is what the `db_query` / `db_exec` steps
take: SQL text never templated, values in `params`, checked identifiers). A database step is
retried while the database is unavailable; its result is `{rows, count}` for a query, else
`{rowsAffected, lastInsertId}`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import orjson
from pydantic import Field, ValidationError, field_validator, model_validator

from flownb.errors import (
    ConfigError,
    Diagnostic,
    ExecutionError,
    FlownbError,
    Loc,
    StepError,
    UnknownNameError,
)
from flownb.fields import Duration, Name, Ref, Spec
from flownb.template import Compiled, TemplateSyntaxError, is_template
from flownb.workflows.base import Workflow

if TYPE_CHECKING:
    import httpx

    from flownb.execution import ExecutionContext
    from flownb.modules.database import Database
    from flownb.modules.httpclient import HttpClient
    from flownb.steps.db import Op
    from flownb.template import Templates

log = logging.getLogger("flownb.integration")

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
_QUERY_METHODS = ("GET", "DELETE", "HEAD")
_RETRY_STATUS = frozenset({408, 429})


_DB_ACTIONS = ("query", "execute", "insert", "update", "delete")


class HttpConnectorConfig(Spec):
    base_url: str = Field("", alias="baseUrl", description="prefix of every path, e.g. https://api")
    client: Annotated[str | None, Ref("httpclient")] = Field(
        None,
        description="httpclient module to call through (its base URL, auth, timeout, retries "
        "and rate limit), instead of baseUrl",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request")
    timeout: Duration = Field(Duration(10.0), description="per-request timeout")

    @model_validator(mode="after")
    def _one_base(self) -> HttpConnectorConfig:
        if bool(self.base_url) == (self.client is not None):
            raise ValueError("give either baseUrl or client (an httpclient module)")
        return self


class WebhookConnectorConfig(Spec):
    url: str = Field(description="where `send` POSTs the step's input as JSON")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request")
    timeout: Duration = Field(Duration(10.0), description="per-request timeout")


class DatabaseConnectorConfig(Spec):
    database: Annotated[str | None, Ref("database", implicit=True)] = Field(
        None, description="database.workflow module; optional when there is one"
    )


class HttpConnectorSpec(Spec):
    name: Name
    type: Literal["http"]
    config: HttpConnectorConfig


class WebhookConnectorSpec(Spec):
    name: Name
    type: Literal["webhook"]
    config: WebhookConnectorConfig


class DatabaseConnectorSpec(Spec):
    name: Name
    type: Literal["database"]
    config: DatabaseConnectorConfig = Field(default_factory=DatabaseConnectorConfig)


ConnectorSpec = Annotated[
    HttpConnectorSpec | WebhookConnectorSpec | DatabaseConnectorSpec,
    Field(discriminator="type"),
]


class IntegrationStepSpec(Spec):
    name: Name
    connector: str
    action: str = Field(
        description="http: 'METHOD /path'; webhook: 'send'; database: query, execute, "
        "insert, update or delete"
    )
    input: dict[str, Any] = Field(default_factory=dict, description="templated request data")
    transform: str | None = Field(None, description="expression applied to the response")
    on_success: str | None = Field(None, alias="onSuccess", description="next step name")
    on_error: str | None = Field(None, alias="onError", description="step to run on failure")
    retry_count: int = Field(0, alias="retryCount", ge=0)
    retry_delay: Duration = Field(Duration(1.0), alias="retryDelay")

    @field_validator("action")
    @classmethod
    def _action_shape(cls, value: str) -> str:
        text = value.strip()
        if text == "send" or text in _DB_ACTIONS:
            return text
        method, _, path = text.partition(" ")
        if method.upper() not in _METHODS or not path.strip().startswith("/"):
            raise ValueError(
                f"action {value!r} should be 'METHOD /path' (methods: {', '.join(_METHODS)}) "
                "for an http connector, 'send' for a webhook, or one of "
                f"{', '.join(_DB_ACTIONS)} for a database"
            )
        return f"{method.upper()} {path.strip()}"


class IntegrationWorkflowSpec(Spec):
    connectors: list[ConnectorSpec] = Field(default_factory=list)
    steps: list[IntegrationStepSpec] = Field(default_factory=list)


# --- runtime ----------------------------------------------------------------------------

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)


def _url_template(templates: Templates, base: str, path: str) -> Compiled:
    """`base + path`, each `{{ expr }}` in the path URL-quoted (a value cannot add a segment)."""
    pieces: list[str | Compiled] = []
    pos = 0
    for m in _EXPR.finditer(path):
        pieces.append(path[pos : m.start()])
        pieces.append(templates.expression(m.group(1).strip()))
        pos = m.end()
    pieces.append(path[pos:])
    if "{%" in path or any(isinstance(p, str) and "{{" in p for p in pieces):
        whole = templates.value(base + path)  # statements (or a syntax error): render as is
        return lambda scope: str(whole(scope))
    if len(pieces) == 1:
        url = base + path
        return lambda _scope: url

    def render(scope: Any) -> str:
        out = [base]
        for piece in pieces:
            out.append(piece if isinstance(piece, str) else quote(str(piece(scope)), safe=""))
        return "".join(out)

    return render


def _expression(templates: Templates, source: str) -> Compiled:
    return templates.value(source) if is_template(source) else templates.expression(source)


def _query(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ExecutionError("the input of a GET/DELETE/HEAD step must be an object", status=400)
    return {
        k: orjson.dumps(v).decode() if isinstance(v, dict | list) else v for k, v in value.items()
    }


class _Step:
    """One step, compiled: how to build its request and where to go next."""

    __slots__ = (
        "attempts",
        "client",
        "delay",
        "headers",
        "in_query",
        "input",
        "method",
        "name",
        "on_error",
        "on_success",
        "timeout",
        "transform",
        "url",
    )

    def __init__(
        self,
        spec: IntegrationStepSpec,
        connector: HttpConnectorSpec | WebhookConnectorSpec,
        templates: Templates,
        next_name: str | None,
        client: HttpClient | None = None,
    ) -> None:
        self.name = spec.name
        config = connector.config
        self.client = client
        if isinstance(config, HttpConnectorConfig):
            method, _, path = spec.action.partition(" ")
            self.url = _url_template(templates, config.base_url.rstrip("/"), path)
        else:
            method = "POST"
            url = config.url
            self.url = lambda _scope: url
        self.method = method
        self.in_query = method in _QUERY_METHODS
        self.headers = templates.value(config.headers)
        own_timeout = client is None or "timeout" in config.model_fields_set
        self.timeout = float(config.timeout) if own_timeout else None
        self.input = templates.value(spec.input)
        self.transform = None if spec.transform is None else _expression(templates, spec.transform)
        self.on_success = spec.on_success or next_name
        self.on_error = spec.on_error
        self.attempts = spec.retry_count + 1
        self.delay = float(spec.retry_delay)


class _DbStep:
    """A database step, compiled: its read or write, and where to go next."""

    __slots__ = (
        "attempts",
        "delay",
        "name",
        "on_error",
        "on_success",
        "op",
        "query",
        "session",
        "transform",
    )

    def __init__(
        self,
        spec: IntegrationStepSpec,
        database: Database,
        templates: Templates,
        next_name: str | None,
    ) -> None:
        from flownb.steps.db import DbRead, DbWrite, compile_read, compile_write

        self.name = spec.name
        self.session = database.session
        self.query = spec.action == "query"
        if self.query:
            self.op: Op = compile_read(DbRead.model_validate(spec.input), templates)
        else:
            given = dict(spec.input)
            if spec.action != "execute":
                given["op"] = spec.action
            elif "query" not in given:
                raise ValueError("action execute needs query (SQL) in its input")
            self.op = compile_write(DbWrite.model_validate(given), templates)
        self.transform = None if spec.transform is None else _expression(templates, spec.transform)
        self.on_success = spec.on_success or next_name
        self.on_error = spec.on_error
        self.attempts = spec.retry_count + 1
        self.delay = float(spec.retry_delay)


def _input_problem(exc: ValidationError) -> str:
    return "; ".join(
        (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
        + str(e["msg"]).removeprefix("Value error, ")
        for e in exc.errors()
    )


class IntegrationWorkflow(Workflow[IntegrationWorkflowSpec]):
    """Runs integration steps; `trigger("run" | step name, data)` is one run."""

    kind = "integration"

    async def configure(self) -> None:
        spec = self.spec
        connectors = {c.name: c for c in spec.connectors}
        names = [s.name for s in spec.steps]
        diags: list[Diagnostic] = []
        self.steps: dict[str, _Step | _DbStep] = {}
        for i, step in enumerate(spec.steps):
            loc: Loc = ("steps", i)
            connector = connectors.get(step.connector)
            if connector is None:
                diags.append(
                    self._diag((*loc, "connector"), f"unknown connector {step.connector!r}")
                )
                continue
            if not _fits(step.action, connector.type):
                want = {
                    "webhook": "'send'",
                    "http": "'METHOD /path'",
                    "database": ", ".join(_DB_ACTIONS),
                }[connector.type]
                diags.append(
                    self._diag(
                        (*loc, "action"),
                        f"connector {connector.name!r} is a {connector.type} connector; "
                        f"its action is {want}",
                    )
                )
                continue
            following = names[i + 1] if i + 1 < len(names) else None
            try:
                self.steps[step.name] = self._compile(step, connector, following)
            except TemplateSyntaxError as exc:
                diags.append(self._diag(loc, str(exc)))
            except ValidationError as exc:
                diags.append(self._diag((*loc, "input"), _input_problem(exc)))
            except (ValueError, FlownbError) as exc:
                diags.append(self._diag((*loc, "input"), str(exc)))
        if diags:
            raise ConfigError(diags)
        self.first = names[0] if names else None
        self.max_steps = max(10, 10 * len(names))

    def _compile(
        self,
        step: IntegrationStepSpec,
        connector: HttpConnectorSpec | WebhookConnectorSpec | DatabaseConnectorSpec,
        following: str | None,
    ) -> _Step | _DbStep:
        engine = self.engine
        if isinstance(connector, DatabaseConnectorSpec):
            from flownb.modules.database import Database

            name = engine.resolve_ref("database", connector.config.database)
            database = engine.services.get(name, Database)
            return _DbStep(step, database, engine.templates, following)
        client = None
        if isinstance(connector, HttpConnectorSpec) and connector.config.client is not None:
            from flownb.modules.httpclient import HttpClient

            client = engine.services.get(connector.config.client, HttpClient)
        return _Step(step, connector, engine.templates, following, client)

    def _diag(self, loc: Loc, message: str) -> Diagnostic:
        return self.engine.config.diagnostic(("workflows", "integration", *loc), message)

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        start = self.first if action == "run" else action
        if start is None or start not in self.steps:
            raise UnknownNameError("integration action", action, ["run", *self.steps])
        ctx = await self.engine.execute(
            "integration",
            action,
            data,
            lambda ctx: self.run(ctx, start),
            request_id=request_id,
        )
        return ctx.result

    async def run(self, ctx: ExecutionContext, start: str) -> dict[str, Any]:
        """Run from step `start`; the result maps each step run to its result."""
        name: str | None = start
        last, executed = start, 0
        while name is not None:
            executed += 1
            if executed > self.max_steps:
                raise ExecutionError(
                    f"integration run stopped after {self.max_steps} steps: onSuccess/onError "
                    f"links loop (last step: {last!r})",
                    status=508,
                )
            step = self.steps[name]
            last = name
            try:
                ctx.steps[name] = await self._run_step(step, ctx)
            except StepError as exc:
                if step.on_error is None:
                    raise
                ctx.steps[name] = {"error": str(exc), "status": exc.status}
                ctx.vars["error"] = {
                    "message": str(exc),
                    "step": name,
                    "status": exc.status,
                    "details": exc.details,
                }
                name = step.on_error
                continue
            name = step.on_success
        return {"steps": dict(ctx.steps), "last": last}

    async def _run_step(self, step: _Step | _DbStep, ctx: ExecutionContext) -> Any:
        if isinstance(step, _DbStep):
            return await self._run_db_step(step, ctx)
        scope = ctx.scope
        try:
            url = step.url(scope)
            headers = {str(k): str(v) for k, v in step.headers(scope).items()}
            payload = step.input(scope)
            query = _query(payload) if step.in_query else None
            content = None if step.in_query else orjson.dumps(payload)
        except FlownbError as exc:
            raise StepError(step.name, str(exc), status=getattr(exc, "status", 500)) from None
        except TypeError as exc:  # orjson: a value that has no JSON form
            raise StepError(step.name, f"input is not JSON: {exc}", status=500) from None
        if ctx.request_id:
            headers.setdefault("X-Request-ID", ctx.request_id)
        if not step.in_query:
            headers.setdefault("Content-Type", "application/json")
        reply = await self._send(step, url, headers, query, content)
        try:
            body: Any = reply.json() if reply.content else None
        except ValueError:
            body = reply.text
        if step.transform is None:
            return body
        response = {"status": reply.status_code, "body": body, "headers": dict(reply.headers)}
        try:
            return step.transform({**scope, "response": response})
        except FlownbError as exc:
            raise StepError(step.name, f"transform failed: {exc}", status=500) from None

    async def _run_db_step(self, step: _DbStep, ctx: ExecutionContext) -> Any:
        from flownb.db.errors import DatabaseUnavailable

        scope = ctx.scope
        error: ExecutionError | None = None
        for attempt in range(step.attempts):
            if attempt:
                log.info("integration step %r: attempt %d after: %s", step.name, attempt + 1, error)
                await asyncio.sleep(step.delay)
            try:
                async with step.session(single=True) as session:
                    found = await step.op(session, scope)
            except DatabaseUnavailable as exc:
                error = exc
                continue
            except FlownbError as exc:
                raise StepError(step.name, str(exc), status=getattr(exc, "status", 500)) from None
            result = {"rows": found, "count": len(found)} if step.query else found.to_dict()
            if step.transform is None:
                return result
            try:
                return step.transform({**scope, "response": result})
            except FlownbError as exc:
                raise StepError(step.name, f"transform failed: {exc}", status=500) from None
        assert error is not None
        raise StepError(step.name, str(error), status=error.status)

    async def _send(
        self,
        step: _Step,
        url: str,
        headers: dict[str, str],
        query: Any,
        content: bytes | None,
    ) -> httpx.Response:
        import httpx

        client = self.engine.http_client()
        error: StepError | None = None
        for attempt in range(step.attempts):
            if attempt:
                log.info("integration step %r: attempt %d after: %s", step.name, attempt + 1, error)
                await asyncio.sleep(step.delay)
            try:
                if step.client is not None:
                    reply = await step.client.request(
                        step.method,
                        url,
                        headers=headers,
                        params=query,
                        content=content,
                        timeout=step.timeout,
                    )
                else:
                    reply = await client.request(
                        step.method,
                        url,
                        headers=headers,
                        params=query,
                        content=content,
                        timeout=step.timeout,
                    )
            except ExecutionError as exc:  # the httpclient gave up (its own retries done)
                error = StepError(step.name, str(exc), status=exc.status)
                continue
            except httpx.HTTPError as exc:
                error = StepError(
                    step.name,
                    f"{step.method} {url} failed: {type(exc).__name__}: {exc}",
                    status=502,
                )
                continue
            status = reply.status_code
            if status < 400:
                return reply
            error = StepError(
                step.name,
                f"{step.method} {url} replied {status}",
                status=502,
                details={"status": status, "body": reply.text[:2000]},
            )
            if status < 500 and status not in _RETRY_STATUS:
                break
        assert error is not None
        raise error


def _fits(action: str, connector: str) -> bool:
    if connector == "webhook":
        return action == "send"
    if connector == "database":
        return action in _DB_ACTIONS
    return action != "send" and action not in _DB_ACTIONS
