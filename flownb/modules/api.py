"""`api.handler`: a REST resource whose lifecycle is a state machine.

Routed by the http workflow, one handler answers every route of the resource:

    POST   /orders                   create (id from `idField` or generated) -> 201
    GET    /orders                   list (`?state=` filters)                -> 200
    GET    /orders/{id}              the resource with its current `state`   -> 200 / 404
    PUT    /orders/{id}              replace its fields (the id stays)       -> 200 / 404
    DELETE /orders/{id}              delete the resource                     -> 204 / 404
    PUT    /orders/{id}/transition   {"transition": ..., "data": {...}}     -> 200 / 409

The resource's fields live in `engine.stores.resources`; its state in a state-machine
instance with the same id. Data a transition adds (its `data`, hook results) is copied into
the resource, so a GET shows it. A refused transition is a 409 (wrong state, guard false,
hook failed; a hook that crashed is logged, not described to the caller). If
`initialTransition` is refused at create, the resource is still created (201) in the
machine's initial state, and the refusal is logged. Deleting a resource keeps its instance
(and history), so an id is not reused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from flownb.errors import ExecutionError, FlownbError, NotFoundError, TransitionError
from flownb.execution import ExecutionContext, Response, new_id
from flownb.fields import Name, Ref, Spec
from flownb.module import Module
from flownb.registry import ModuleType
from flownb.schemas import Checker, compile_schema

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.http.request import Request
    from flownb.modules.statemachine import StateMachineEngine
    from flownb.stores import Instance, ResourceStore

log = logging.getLogger("flownb.api")
_MISSING = object()


class ApiHandlerConfig(Spec):
    resource_name: Name = Field(
        alias="resourceName", description="resource kind, e.g. orders (its store key)"
    )
    engine: Annotated[str | None, Ref("statemachine", implicit=True)] = Field(
        None, description="statemachine.engine; optional when there is one"
    )
    workflow_type: str | None = Field(
        None,
        alias="workflowType",
        description="state machine definition; optional when a resourceMapping names one "
        "or only one is defined",
    )
    id_field: str = Field("id", alias="idField", min_length=1, description="the id's field")
    initial_transition: str | None = Field(
        None, alias="initialTransition", description="transition fired right after create"
    )
    schema_: dict[str, Any] | None = Field(
        None, alias="schema", description="JSON Schema that POST and PUT bodies must match"
    )


class ApiHandler(Module[ApiHandlerConfig]):
    """CRUD on one resource kind plus `PUT .../{id}/transition` (a `Handler`)."""

    def __init__(self, name: str, config: ApiHandlerConfig) -> None:
        super().__init__(name, config)
        self.resource = config.resource_name
        self.id_field = config.id_field
        self._check: Checker | None = None
        self._machines: StateMachineEngine | None = None
        self._store: ResourceStore | None = None
        self.machine: str | None = config.workflow_type

    async def init(self, engine: Engine) -> None:
        from flownb.modules.statemachine import StateMachineEngine

        name = engine.resolve_ref("statemachine", self.config.engine)
        self._machines = engine.services.get(name, StateMachineEngine)
        self._store = engine.stores.resources
        if self.config.schema_ is not None:
            self._check = compile_schema(self.config.schema_)

    async def start(self) -> None:
        """Check the machine and transition names once the definitions are registered."""
        machines = self.machines
        if self.machine is None:
            mapping = machines.mapping_for(self.resource)
            if mapping is not None:
                self.machine = mapping.state_machine
            elif len(machines.definitions) == 1:
                self.machine = next(iter(machines.definitions))
        known = list(machines.definitions)
        if self.machine is None or self.machine not in machines.definitions:
            what = repr(self.machine) if self.machine else "none named"
            raise FlownbError(
                f"workflowType: {what} is not a state machine of {machines.name!r} "
                f"(defined: {', '.join(known) or 'none'})"
            )
        transition = self.config.initial_transition
        if transition and transition not in machines.definitions[self.machine].transitions:
            raise FlownbError(
                f"initialTransition {transition!r} is not a transition of {self.machine!r}"
            )

    @property
    def machines(self) -> StateMachineEngine:
        if self._machines is None:
            raise FlownbError(f"api.handler {self.name!r} is used before the engine built it")
        return self._machines

    @property
    def store(self) -> ResourceStore:
        if self._store is None:
            raise FlownbError(f"api.handler {self.name!r} is used before the engine built it")
        return self._store

    # --- dispatch -------------------------------------------------------------------------
    async def handle(self, ctx: ExecutionContext, data: Any) -> Any:
        request: Request | None = ctx.request
        if request is None:
            raise ExecutionError(
                f"api.handler {self.name!r} answers HTTP routes; route it in workflows.http",
                status=400,
            )
        method = request.method
        rid = self._id_param(request.params)
        if rid is None:
            if method == "POST":
                return await self.create(ctx, _object(request.body, "the body"))
            if method in ("GET", "HEAD"):
                return await self.list(request.query.get("state"))
        elif request.route.endswith("/transition"):
            if method in ("PUT", "POST"):
                return await self.transition(ctx, rid, _object(request.body, "the body"))
        elif method in ("GET", "HEAD"):
            return await self.get(rid)
        elif method == "PUT":
            return await self.update(rid, _object(request.body, "the body"))
        elif method == "DELETE":
            return await self.delete(rid)
        raise ExecutionError(
            f"{method} {request.route} is not an operation of resource {self.resource!r}",
            status=405,
        )

    def _id_param(self, params: dict[str, str]) -> str | None:
        if not params:
            return None
        found = params.get(self.id_field) or params.get("id")
        if found is None and len(params) == 1:
            found = next(iter(params.values()))
        return found

    # --- operations -----------------------------------------------------------------------
    async def create(self, ctx: ExecutionContext, body: dict[str, Any]) -> Response:
        self._validate(body)
        given = body.get(self.id_field)
        rid = new_id() if given is None or given == "" else str(given)
        record = {self.id_field: rid, **{k: v for k, v in body.items() if k != self.id_field}}
        instance = await self.machines.create(self.machine, rid, dict(record), parent=ctx)
        _copy_changes(record, record, instance.data)
        transition = self.config.initial_transition
        if transition:
            before = instance.data
            try:
                instance = await self.machines.transition(
                    rid, transition, {}, machine=self.machine, parent=ctx
                )
            except TransitionError as exc:
                log.warning(
                    "%s %s: initial transition %r refused (request %s)",
                    self.resource,
                    rid,
                    transition,
                    ctx.request_id,
                    exc_info=exc,
                )
            else:
                _copy_changes(record, before, instance.data)
        await self.store.put(self.resource, rid, record)
        location = f"{ctx.request.path.rstrip('/')}/{rid}" if ctx.request else ""
        headers = {"Location": location} if location else {}
        return Response(201, _view(record, instance), headers)

    async def list(self, state: str | None = None) -> list[dict[str, Any]]:
        records = await self.store.list(self.resource)
        states = {i.id: i.state for i in await self.machines.list(self.machine, state)}
        out = []
        for record in records:
            current = states.get(str(record.get(self.id_field)))
            if current is not None or state is None:
                out.append({**record, "state": current})
        return out

    async def get(self, rid: str) -> dict[str, Any]:
        record = await self._record(rid)
        return _view(record, await self._instance(rid))

    async def update(self, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        self._validate(body)
        await self._record(rid)
        given = body.get(self.id_field)
        if given is not None and str(given) != rid:
            raise ExecutionError(
                f"{self.id_field} {given!r} in the body does not match {rid!r} in the path",
                status=400,
            )
        record = {self.id_field: rid, **{k: v for k, v in body.items() if k != self.id_field}}
        await self.store.put(self.resource, rid, record)
        return _view(record, await self._instance(rid))

    async def delete(self, rid: str) -> Response:
        if not await self.store.delete(self.resource, rid):
            raise NotFoundError(f"{self.resource} {rid!r} does not exist")
        return Response(204)

    async def transition(
        self, ctx: ExecutionContext, rid: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        name = body.get("transition")
        if not isinstance(name, str) or not name:
            raise ExecutionError(
                'the body must name the transition: {"transition": "...", "data": {...}}',
                status=400,
            )
        data = _object(body.get("data") or {}, "data")
        record = await self._record(rid)
        before = (await self._instance(rid)).data
        try:
            instance = await self.machines.transition(
                rid, name, data, machine=self.machine, parent=ctx
            )
        except TransitionError as exc:
            raise _refused(exc, f"transition {name!r} of {self.resource} {rid!r}", ctx) from exc
        if _copy_changes(record, before, instance.data):
            await self.store.put(self.resource, rid, record)
        return _view(record, instance)

    # --- helpers --------------------------------------------------------------------------
    def _validate(self, body: dict[str, Any]) -> None:
        if self._check is None:
            return
        problems = self._check(body)
        if problems:
            from flownb.errors import ValidationFailed

            raise ValidationFailed(
                f"{self.resource}: "
                + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5]),
                details=problems,
            )

    async def _record(self, rid: str) -> dict[str, Any]:
        record = await self.store.get(self.resource, rid)
        if record is None:
            raise NotFoundError(f"{self.resource} {rid!r} does not exist")
        return record

    async def _instance(self, rid: str) -> Instance:
        return await self.machines.get(rid, self.machine)


def _refused(exc: TransitionError, what: str, ctx: ExecutionContext) -> TransitionError:
    """A refusal as 409. A hook that crashed (5xx) is logged; the caller is not shown why."""
    if exc.status < 500:
        return TransitionError(str(exc), status=409, details=exc.details)
    log.error("%s failed (request %s)", what, ctx.request_id, exc_info=exc)
    return TransitionError(f"{what} was refused: a hook failed (see the server log)", status=409)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExecutionError(f"{what} must be a JSON object", status=400)
    return value


def _view(record: dict[str, Any], instance: Instance) -> dict[str, Any]:
    return {**record, "state": instance.state}


def _copy_changes(record: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Copy into `record` what differs between the instance data before and after."""
    changed = False
    for key, value in after.items():
        if before.get(key, _MISSING) != value and record.get(key, _MISSING) != value:
            record[key] = value
            changed = True
    return changed


TYPES: list[ModuleType] = [
    ModuleType(
        "api.handler",
        "HTTP",
        "REST resource (create, list, get, update, delete) whose lifecycle is a state "
        "machine; PUT /{id}/transition fires transitions",
        ApiHandlerConfig,
        ApiHandler,
        provides=("handler",),
    ),
]
