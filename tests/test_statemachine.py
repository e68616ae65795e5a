"""The state machine: guarded transitions, hooks that roll back, automatic transitions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from flownb.engine import Engine
from flownb.errors import ConfigError, ExecutionError, NotFoundError, TransitionError
from flownb.loader import parse_config
from flownb.modules.statemachine import StateMachineEngine
from flownb.stores import ConflictError, Instance

ORDER = """
modules:
  - name: machines
    type: statemachine.engine
    config: {maxAutoSteps: %(max_auto)s}
workflows:
  statemachine:
    engine: machines
    definitions:
      - name: order
        initialState: received
        states:
          received: {}
          validated: {}
          stored: {}
          notified: {isFinal: true}
        transitions:
          validate:
            fromState: received
            toState: validated
            autoTransform: true
            condition: "instance.data.total > 0"
          store: {fromState: validated, toState: stored, autoTransform: true}
          notify: {fromState: stored, toState: notified, autoTransform: true}
      - name: loop
        initialState: ping
        states: {ping: {}, pong: {}}
        transitions:
          hit: {fromState: ping, toState: pong, autoTransform: true}
          back: {fromState: pong, toState: ping, autoTransform: true}
    hooks:
      - handler: record
        workflowType: order
%(hooks)s
pipelines:
  record:
    - {type: call, function: record}
  fail:
    - {type: call, function: fail}
"""

DOCUMENT = """
modules:
  - name: machines
    type: statemachine.engine
    config: {maxHistory: 3}
workflows:
  statemachine:
    definitions:
      - name: document
        initialState: draft
        states:
          draft: {}
          pending: {}
          approved: {isFinal: true}
          rejected: {isFinal: true}
        transitions:
          submit: {fromState: draft, toState: pending, data: {submitted: true}}
          revise: {fromState: pending, toState: draft}
          approve:
            fromState: pending
            toState: approved
            condition: "data.amount <= instance.data.limit"
          reject: {fromState: [draft, pending], toState: rejected}
    hooks: %(hooks)s
pipelines:
  record:
    - {type: call, function: record}
  fail:
    - {type: call, function: fail}
  enrich:
    - {type: call, function: enrich, replace_data: true}
  reply:
    - type: respond
      body: {data: {replied: "{{ data.transition }}"}}
  passthrough:
    - type: set
      values: {seen: true}
      target: data
"""


class Recorder:
    """Hook function that records every payload it receives."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, payload: dict[str, Any]) -> None:
        self.calls.append(payload)

    @property
    def transitions(self) -> list[str]:
        return [c["transition"] for c in self.calls]


def failing(message: str = "hook exploded", status: int | None = None) -> Callable[[Any], Any]:
    def fail(_payload: Any) -> None:
        if status is None:
            raise ValueError(message)
        raise ExecutionError(message, status=status)

    return fail


@asynccontextmanager
async def running(yaml_text: str, **functions: Callable[..., Any]) -> AsyncIterator[Engine]:
    defaults: dict[str, Callable[..., Any]] = {
        "record": Recorder(),
        "fail": failing(),
        "enrich": lambda _payload: None,
    }
    engine = Engine(parse_config(yaml_text), functions={**defaults, **functions})
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def machines(engine: Engine) -> StateMachineEngine:
    return engine.services.get("machines", StateMachineEngine)


def document(hooks: str = "[]") -> str:
    return DOCUMENT % {"hooks": hooks}


def order(hooks: str = "", max_auto: int = 32) -> str:
    return ORDER % {"hooks": hooks, "max_auto": max_auto}


def snapshot(instance: Instance) -> tuple[str, dict[str, Any], int, list[dict[str, Any]]]:
    return instance.state, instance.data, instance.version, instance.history


async def test_create_and_transitions() -> None:
    async with running(document()) as engine:
        sm = machines(engine)
        created = await sm.create(None, None, {"limit": 100})
        assert len(created.id) == 32
        assert (created.state, created.version, created.history) == ("draft", 1, [])

        pending = await sm.transition(created.id, "submit", {"note": "first"})
        assert pending.state == "pending"
        assert pending.data == {"limit": 100, "submitted": True, "note": "first"}
        assert pending.version == 2
        [entry] = pending.history
        assert entry["transition"] == "submit"
        assert (entry["from"], entry["to"], entry["dataKeys"]) == ("draft", "pending", ["note"])

        approved = await sm.transition(created.id, "approve", {"amount": 40})
        assert (approved.state, approved.version) == ("approved", 3)
        assert await sm.get(created.id) == approved
        assert [i.id for i in await sm.list(state="approved")] == [created.id]
        assert await sm.list("document", "draft") == []
        assert approved == await engine.stores.state.get("document", created.id)


async def test_history_is_bounded_by_max_history() -> None:
    async with running(document()) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {})
        for _ in range(3):
            await sm.transition("d1", "submit")
            await sm.transition("d1", "revise")
        history = (await sm.get("d1")).history
        assert [h["transition"] for h in history] == ["revise", "submit", "revise"]


async def test_wrong_from_state_is_409_naming_states() -> None:
    async with running(document()) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {"limit": 10})
        with pytest.raises(TransitionError) as info:
            await sm.transition("d1", "approve", {"amount": 1})
        assert info.value.status == 409
        assert "'draft'" in str(info.value) and "'pending'" in str(info.value)

        await sm.transition("d1", "reject")
        with pytest.raises(TransitionError, match="final state"):
            await sm.transition("d1", "submit")
        assert (await sm.get("d1")).state == "rejected"


async def test_unknown_names_are_clear_errors() -> None:
    async with running(document()) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {})
        with pytest.raises(ExecutionError, match="did you mean 'submit'") as info:
            await sm.transition("d1", "submt")
        assert info.value.status == 400
        with pytest.raises(NotFoundError):
            await sm.transition("nope", "submit")
        with pytest.raises(NotFoundError):
            await sm.get("nope")
        with pytest.raises(NotFoundError, match="unknown state machine 'documnt'"):
            await sm.create("documnt", None, {})
        with pytest.raises(ConflictError, match="already has an instance 'd1'"):
            await sm.create("document", "d1", {})
        with pytest.raises(ExecutionError, match="must be an object") as bad:
            await sm.transition("d1", "submit", [1, 2])  # type: ignore[arg-type]
        assert bad.value.status == 400


async def test_guard_condition_true_and_false() -> None:
    async with running(document()) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {"limit": 50})
        await sm.transition("d1", "submit")
        before = await sm.get("d1")
        with pytest.raises(TransitionError, match=r"guard .* is false") as info:
            await sm.transition("d1", "approve", {"amount": 51})
        assert info.value.status == 409
        assert await sm.get("d1") == before

        with pytest.raises(TransitionError, match="could not be evaluated"):
            await sm.transition("d1", "approve", {})  # None <= 50 is a TypeError
        approved = await sm.transition("d1", "approve", {"amount": 50})
        assert approved.state == "approved"


async def test_auto_transform_chain_completes_from_one_create() -> None:
    recorder = Recorder()
    async with running(order(), record=recorder, fail=failing()) as engine:
        sm = machines(engine)
        done = await sm.create("order", "o1", {"total": 25})
        assert done.state == "notified"
        assert done.version == 4
        assert [(h["transition"], h["auto"]) for h in done.history] == [
            ("validate", True),
            ("store", True),
            ("notify", True),
        ]
        assert recorder.transitions == ["validate", "store", "notify"]

        waiting = await sm.create("order", "o2", {"total": 0})
        assert (waiting.state, waiting.version) == ("received", 1)
        with pytest.raises(TransitionError, match="is false"):
            await sm.transition("o2", "validate")
        assert recorder.transitions == ["validate", "store", "notify"]


async def test_auto_transform_loop_is_stopped() -> None:
    async with running(order(max_auto=5)) as engine:
        sm = machines(engine)
        with pytest.raises(TransitionError, match="loop") as info:
            await sm.create("loop", "l1", {})
        assert "5 automatic transitions" in str(info.value)
        stuck = await sm.get("l1", "loop")
        assert stuck.version == 1 + 5
        assert stuck.state == "pong"


async def test_failing_auto_hook_keeps_earlier_steps_and_records_error() -> None:
    hooks = "      - {handler: fail, transitions: [store]}"
    async with running(order(hooks), record=Recorder(), fail=failing("disk full")) as engine:
        sm = machines(engine)
        reached = await sm.create("order", "o1", {"total": 1})
        assert reached.state == "validated"
        assert reached.version == 3  # created, validated, failure recorded
        *_, failure = reached.history
        assert failure["transition"] == "store" and failure["auto"] is True
        assert "disk full" in failure["error"]
        assert await sm.get("o1") == reached


async def test_hook_filters() -> None:
    hooks = """
      - {handler: all, workflowType: document}
      - {handler: by_transition, transitions: [reject]}
      - {handler: by_from, fromStates: [pending]}
      - {handler: by_to, toStates: [pending, approved]}
      - {handler: other_machine, workflowType: ticket}
"""
    names = ["all", "by_transition", "by_from", "by_to", "other_machine"]
    recorders = {name: Recorder() for name in names}
    pipelines = "".join(f"  {n}:\n    - {{type: call, function: {n}}}\n" for n in names)
    ticket = (
        "      - name: ticket\n        initialState: open\n        states: {open: {}, "
        "closed: {}}\n        transitions: {close: {fromState: open, toState: closed}}\n"
    )
    yaml_text = (
        document(hooks)
        .replace("    hooks:", ticket + "    hooks:")
        .replace("pipelines:\n", "pipelines:\n" + pipelines)
    )
    async with running(yaml_text, **recorders) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {"limit": 10})
        await sm.transition("d1", "submit")
        await sm.transition("d1", "reject")
        await sm.create("ticket", "t1", {})
        await sm.transition("t1", "close", machine="ticket")

    assert recorders["all"].transitions == ["submit", "reject"]
    assert recorders["by_transition"].transitions == ["reject"]
    assert recorders["by_from"].transitions == ["reject"]
    assert recorders["by_to"].transitions == ["submit"]
    assert recorders["other_machine"].transitions == ["close"]
    payload = recorders["all"].calls[0]
    assert payload["fromState"] == "draft" and payload["toState"] == "pending"
    assert payload["instance"]["state"] == "pending"
    assert payload["instance"]["data"] == {"limit": 10, "submitted": True}


@pytest.mark.parametrize(
    ("fail", "status", "message"),
    [
        (failing("no stock"), 500, "ValueError: no stock"),
        (failing("payment declined", status=402), 402, "payment declined"),
    ],
)
async def test_failing_hook_leaves_instance_untouched(
    fail: Callable[[Any], Any], status: int, message: str
) -> None:
    recorder = Recorder()
    hooks = "[{handler: record}, {handler: fail, transitions: [approve]}]"
    async with running(document(hooks), record=recorder, fail=fail) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {"limit": 10})
        await sm.transition("d1", "submit", {"x": 1})
        before = await sm.get("d1")

        with pytest.raises(TransitionError) as info:
            await sm.transition("d1", "approve", {"amount": 5})
        assert info.value.status == status
        assert message in str(info.value)
        assert "rolled back" in str(info.value)

        after = await sm.get("d1")
        assert after.state == before.state == "pending"
        assert after.data == before.data
        assert after.version == before.version
        assert after.history == before.history
        # The first hook saw the candidate state; nothing of it was kept.
        assert recorder.calls[-1]["instance"]["state"] == "approved"


async def test_hook_data_is_merged() -> None:
    def enrich(payload: dict[str, Any]) -> dict[str, Any]:
        return {"data": {"enriched": payload["instance"]["data"]["limit"] * 2}}

    recorder = Recorder()
    hooks = "[{handler: enrich}, {handler: reply}, {handler: passthrough}, {handler: record}]"
    async with running(document(hooks), record=recorder, fail=failing(), enrich=enrich) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {"limit": 10})
        moved = await sm.transition("d1", "submit", {"note": "n"})
        assert moved.data == {
            "limit": 10,
            "submitted": True,
            "note": "n",
            "enriched": 20,
            "replied": "submit",
        }
        # A later hook sees what earlier hooks merged.
        assert recorder.calls[0]["instance"]["data"]["enriched"] == 20


async def test_hook_returning_non_object_data_rolls_back() -> None:
    hooks = "[{handler: enrich}]"
    async with running(document(hooks), enrich=lambda _p: {"data": 5}) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {})
        with pytest.raises(TransitionError, match="returned data of type int"):
            await sm.transition("d1", "submit")
        assert (await sm.get("d1")).state == "draft"


async def test_concurrent_transitions_on_one_instance_are_serialised() -> None:
    running_now = 0
    most = 0

    async def slow(_payload: Any) -> None:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        for _ in range(20):
            await asyncio.sleep(0)  # yield so an unserialised rival would interleave here
        running_now -= 1

    hooks = "[{handler: enrich}]"
    async with running(document(hooks), enrich=slow) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {"limit": 10})
        await sm.transition("d1", "submit")
        results = await asyncio.gather(
            sm.transition("d1", "approve", {"amount": 1}),
            sm.transition("d1", "reject"),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, Instance)]
        losses = [r for r in results if isinstance(r, TransitionError)]
        assert len(wins) == 1 and len(losses) == 1
        assert most == 1
        final = await sm.get("d1")
        assert final.state == wins[0].state
        assert final.version == 3
        assert len(sm._locks) == 0  # idle locks are dropped


async def test_hook_transitioning_its_own_instance_fails_fast() -> None:
    yaml_text = document("[{handler: again, transitions: [submit]}]").replace(
        "pipelines:\n",
        "pipelines:\n  again:\n    - {type: transition, instance: '{{ data.instance.id }}', "
        "transition: revise}\n",
    )
    async with running(yaml_text) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {})
        async with asyncio.timeout(5):
            with pytest.raises(TransitionError, match="hook tries to transition it again"):
                await sm.transition("d1", "submit")
        assert (await sm.get("d1")).version == 1


async def test_stale_version_from_another_writer_is_a_conflict() -> None:
    async def meddle(payload: dict[str, Any], ctx: Any) -> None:
        # Stands in for another engine process writing the same instance meanwhile.
        store = ctx.engine.stores.state
        current = await store.get("document", payload["instance"]["id"])
        current.data["meddled"] = True
        await store.put(current, expected_version=current.version)

    async with running(document("[{handler: enrich}]"), enrich=meddle) as engine:
        sm = machines(engine)
        await sm.create("document", "d1", {})
        with pytest.raises(ConflictError) as info:
            await sm.transition("d1", "submit")
        assert info.value.status == 409
        kept = await sm.get("d1")
        assert (kept.state, kept.data, kept.version) == ("draft", {"meddled": True}, 2)


async def test_instances_are_found_across_machines() -> None:
    async with running(order()) as engine:
        sm = machines(engine)
        await sm.create("order", "shared", {"total": 0})
        await sm.create("order", "o1", {"total": 0})
        with pytest.raises(TransitionError, match="'o1': guard"):
            await sm.transition("o1", "validate")
        assert (await sm.get("o1")).machine == "order"
        with pytest.raises(TransitionError):
            await sm.create("loop", "shared", {})  # loops, but the instance exists
        with pytest.raises(ExecutionError, match="several state machines") as info:
            await sm.get("shared")
        assert info.value.status == 409
        with pytest.raises(ExecutionError, match="name the state machine"):
            await sm.create(None, None, {})


async def test_trigger_workflow_create_and_transition() -> None:
    yaml_text = document().replace(
        "    hooks: []\n",
        "    hooks: []\n    resourceMappings:\n"
        "      - {resourceType: doc, stateMachine: document, instanceIDKey: docId}\n",
    )
    async with running(yaml_text) as engine:
        created = await engine.trigger_workflow(
            "statemachine", "create", {"resourceType": "doc", "docId": "D-1", "limit": 5}
        )
        assert created["id"] == "D-1"
        assert (created["machine"], created["state"]) == ("document", "draft")
        assert created["data"] == {"limit": 5}

        moved = await engine.trigger_workflow(
            "statemachine", "submit", {"resourceType": "doc", "docId": "D-1", "by": "ann"}
        )
        assert (moved["state"], moved["data"]["by"]) == ("pending", "ann")

        approved = await engine.trigger_workflow(
            "statemachine", "approve", {"id": "D-1", "data": {"amount": 5}}
        )
        assert approved["state"] == "approved"
        assert approved["version"] == 3

        plain = await engine.trigger_workflow(
            "statemachine", "create", {"machine": "document", "data": {"limit": 1}}
        )
        assert len(plain["id"]) == 32 and plain["data"] == {"limit": 1}

        with pytest.raises(ExecutionError, match=r"needs the instance id in data\.id") as info:
            await engine.trigger_workflow("statemachine", "submit", {})
        assert info.value.status == 400
        with pytest.raises(ExecutionError, match="no resourceMappings entry for"):
            await engine.trigger_workflow("statemachine", "create", {"resourceType": "x"})


async def test_bad_guard_expression_is_a_config_error_with_position() -> None:
    yaml_text = document().replace(
        'condition: "data.amount <= instance.data.limit"', 'condition: "data.amount <=="'
    )
    engine = Engine(
        parse_config(yaml_text), functions={"record": print, "fail": print, "enrich": print}
    )
    with pytest.raises(ConfigError) as info:
        await engine.start()
    [diag] = info.value.diagnostics
    assert diag.path == "workflows.statemachine.definitions[0].transitions.approve.condition"
    assert diag.line > 1
    assert "invalid expression" in diag.message


EVENTS = """
modules:
  - name: bus
    type: messaging.broker
  - name: machines
    type: statemachine.engine
    config:
      events: {broker: bus, topic: sm.events}
workflows:
  statemachine:
    definitions:
      - name: document
        initialState: draft
        states: {draft: {}, pending: {}, done: {isFinal: true}}
        transitions:
          submit: {fromState: draft, toState: pending}
          finish: {fromState: pending, toState: done}
          close: {fromState: draft, toState: done}
    hooks:
      - {handler: fail, transitions: [close]}
pipelines:
  fail:
    - {type: call, function: fail}
"""


async def test_events_are_published_on_commit_only() -> None:
    from flownb.brokers.base import Message
    from flownb.modules.messaging import MessageBroker

    received: asyncio.Queue[Message] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await received.put(message)

    async with running(EVENTS) as engine:
        await engine.services.get("bus", MessageBroker).subscribe("sm.events", collect)
        sm = machines(engine)
        await sm.create("document", "d1", {"n": 1})
        with pytest.raises(TransitionError):
            await sm.transition("d1", "close")  # its hook fails: rolled back, no event
        await engine.trigger_workflow("statemachine", "submit", {"id": "d1"}, request_id="r-9")
        await sm.transition("d1", "finish", {"m": 2})

        async with asyncio.timeout(5):
            first = await received.get()
            second = await received.get()
        assert first.payload == {
            "type": "document.submit",
            "instanceId": "d1",
            "machine": "document",
            "transition": "submit",
            "fromState": "draft",
            "toState": "pending",
            "data": {"n": 1},
        }
        assert first.headers.get("request-id") == "r-9"
        assert second.payload["type"] == "document.finish"
        assert second.payload["data"] == {"n": 1, "m": 2}
        assert received.empty()


async def test_eventbus_hears_transitions_and_may_move_the_instance_on() -> None:
    from flownb.modules.eventbus import Event, EventBus

    yaml_text = EVENTS.replace(
        "  - name: machines\n", "  - name: events\n    type: eventbus\n  - name: machines\n"
    ).replace("events: {broker: bus, topic: sm.events}", "eventbus: events")
    heard: list[Event] = []
    async with running(yaml_text) as engine:
        sm = machines(engine)

        async def on_submit(event: Event) -> None:
            # Runs after the lock is released, so it may transition the same instance.
            await sm.transition(event.payload["instanceId"], "finish")

        bus = engine.services.get("events", EventBus)
        bus.subscribe("document.*", heard.append)
        bus.subscribe("document.submit", on_submit)
        await sm.create("document", "d1", {})
        with pytest.raises(TransitionError):
            await sm.transition("d1", "close")  # rolled back: not announced
        async with asyncio.timeout(5):
            moved = await sm.transition("d1", "submit")
        assert moved.state == "pending"  # the state this call committed
        assert (await sm.get("d1")).state == "done"
        assert [(e.type, e.source) for e in heard] == [
            ("document.submit", "machines"),
            ("document.finish", "machines"),
        ]
        assert heard[0].payload["toState"] == "pending"
