"""The `transition` pipeline step driving the state machine engine."""

from __future__ import annotations

from typing import Any

import pytest

from flownb.engine import Engine
from flownb.errors import StepError
from flownb.execution import ExecutionContext, Response
from flownb.loader import parse_config
from flownb.modules.statemachine import StateMachineEngine

CONFIG = """
modules:
  - name: machines
    type: statemachine.engine
workflows:
  statemachine:
    definitions:
      - name: ticket
        initialState: open
        states: {open: {}, assigned: {}, closed: {isFinal: true}}
        transitions:
          assign: {fromState: open, toState: assigned}
          close: {fromState: [open, assigned], toState: closed}
    hooks:
      - {handler: audit, transitions: [assign]}
pipelines:
  audit:
    - {type: call, function: audit}
  assign:
    - type: transition
      name: moved
      transition: assign
      data: {assignee: "{{ data.user }}", priority: 2}
    - type: respond
      status: 200
      body: {state: "{{ steps.moved.state }}", data: "{{ steps.moved.data }}"}
  by_template:
    - type: transition
      instance: "{{ data.ticket }}"
      transition: "{{ data.action }}"
  tolerant:
    - {type: transition, transition: assign, on_error: continue}
    - type: respond
      body: "{{ steps['0:transition'] }}"
"""


@pytest.fixture
async def engine() -> Any:
    calls: list[tuple[str | None, dict[str, Any]]] = []

    def audit(payload: dict[str, Any], ctx: ExecutionContext) -> None:
        calls.append((ctx.request_id, payload))

    engine = Engine(parse_config(CONFIG), functions={"audit": audit})
    engine.audit_calls = calls  # type: ignore[attr-defined]
    await engine.start()
    yield engine
    await engine.stop()


async def test_transition_step_moves_the_instance(engine: Engine) -> None:
    await engine.trigger_workflow("statemachine", "create", {"id": "t1", "title": "x"})
    reply = await engine.trigger_workflow(
        "pipeline", "assign", {"id": "t1", "user": "ann"}, request_id="req-7"
    )
    assert isinstance(reply, Response)
    assert reply.status == 200
    assert reply.body == {
        "state": "assigned",
        "data": {"title": "x", "assignee": "ann", "priority": 2},
    }
    [(request_id, payload)] = engine.audit_calls  # type: ignore[attr-defined]
    assert request_id == "req-7"  # hooks run as executions of the same request
    assert payload["data"] == {"assignee": "ann", "priority": 2}


async def test_transition_step_takes_templates(engine: Engine) -> None:
    await engine.trigger_workflow("statemachine", "create", {"id": "t2"})
    await engine.trigger_workflow("pipeline", "by_template", {"ticket": "t2", "action": "close"})
    instance = await engine.services.get("machines", StateMachineEngine).get("t2")
    assert (instance.state, instance.version) == ("closed", 2)


async def test_refused_transition_fails_the_step_with_409(engine: Engine) -> None:
    await engine.trigger_workflow("statemachine", "create", {"id": "t3"})
    await engine.trigger_workflow("statemachine", "close", {"id": "t3"})
    with pytest.raises(StepError) as info:
        await engine.trigger_workflow("pipeline", "assign", {"id": "t3", "user": "bo"})
    assert info.value.status == 409
    assert "it is in state 'closed'" in str(info.value)

    reply = await engine.trigger_workflow("pipeline", "tolerant", {"id": "t3"})
    assert "closed" in reply.body["error"]
