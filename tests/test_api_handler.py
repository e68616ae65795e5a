"""`api.handler` end to end: a REST resource driven by an order state machine, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from flownb.errors import BuildError
from flownb.testing import run_engine

ORDERS = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router, config: {prefix: /api}}
  - {name: machines, type: statemachine.engine}
  - name: orders
    type: api.handler
    config:
      resourceName: orders
      workflowType: order
      initialTransition: submit
      schema:
        type: object
        required: [item]
        properties:
          item: {type: string}
          qty: {type: integer, minimum: 1}
workflows:
  statemachine:
    definitions:
      - name: order
        initialState: new
        states:
          new: {}
          submitted: {}
          paid: {}
          shipped: {isFinal: true}
          cancelled: {isFinal: true}
        transitions:
          submit: {fromState: new, toState: submitted}
          pay: {fromState: submitted, toState: paid, condition: "data.amount > 0"}
          ship: {fromState: paid, toState: shipped}
          cancel: {fromState: [new, submitted], toState: cancelled}
    hooks:
      - {workflowType: order, transitions: [ship], handler: label}
  http:
    routes:
      - {method: [GET, POST], path: /orders, handler: orders}
      - {method: [GET, PUT, DELETE], path: "/orders/{id}", handler: orders}
      - {method: PUT, path: "/orders/{id}/transition", handler: orders}
pipelines:
  label:
    - {type: call, function: label, replace_data: true}
"""


def label(data: dict[str, Any]) -> dict[str, Any]:
    if data["instance"]["data"].get("item") == "fragile":
        raise RuntimeError("no courier for fragile items")
    return {"data": {"tracking": f"T-{data['instance']['id']}"}}


async def test_order_lifecycle_over_http() -> None:
    async with run_engine(ORDERS, functions={"label": label}) as h:
        c = h.client
        created = await c.post("/api/orders", json={"item": "book", "qty": 2})
        assert created.status_code == 201
        order = created.json()
        oid = order["id"]
        assert order == {"id": oid, "item": "book", "qty": 2, "state": "submitted"}
        assert created.headers["location"] == f"/api/orders/{oid}"

        assert (await c.get(f"/api/orders/{oid}")).json()["state"] == "submitted"

        refused = await c.put(
            f"/api/orders/{oid}/transition", json={"transition": "pay", "data": {"amount": 0}}
        )
        assert refused.status_code == 409, "guard false"
        assert "guard" in refused.json()["error"]["message"]
        wrong = await c.put(f"/api/orders/{oid}/transition", json={"transition": "ship"})
        assert wrong.status_code == 409, "wrong state"

        paid = await c.put(
            f"/api/orders/{oid}/transition", json={"transition": "pay", "data": {"amount": 30}}
        )
        assert paid.status_code == 200
        assert paid.json() == {"id": oid, "item": "book", "qty": 2, "amount": 30, "state": "paid"}

        shipped = await c.put(f"/api/orders/{oid}/transition", json={"transition": "ship"})
        assert shipped.status_code == 200
        assert shipped.json()["state"] == "shipped"
        assert shipped.json()["tracking"] == f"T-{oid}", "hook results reach the resource"

        final = (await c.get(f"/api/orders/{oid}")).json()
        assert final["state"] == "shipped" and final["tracking"] == f"T-{oid}"


async def test_create_with_id_list_update_delete() -> None:
    async with run_engine(ORDERS, functions={"label": label}) as h:
        c = h.client
        assert (await c.post("/api/orders", json={"id": "a1", "item": "pen"})).status_code == 201
        assert (await c.post("/api/orders", json={"id": "a2", "item": "ink"})).status_code == 201
        again = await c.post("/api/orders", json={"id": "a1", "item": "pen"})
        assert again.status_code == 409
        await c.put("/api/orders/a2/transition", json={"transition": "cancel"})

        listed = (await c.get("/api/orders")).json()
        assert sorted((o["id"], o["state"]) for o in listed) == [
            ("a1", "submitted"),
            ("a2", "cancelled"),
        ]
        only = (await c.get("/api/orders", params={"state": "cancelled"})).json()
        assert [o["id"] for o in only] == ["a2"]

        updated = await c.put("/api/orders/a1", json={"item": "pencil", "qty": 3})
        assert updated.status_code == 200
        assert updated.json() == {"id": "a1", "item": "pencil", "qty": 3, "state": "submitted"}
        mismatch = await c.put("/api/orders/a1", json={"id": "zz", "item": "x"})
        assert mismatch.status_code == 400

        assert (await c.delete("/api/orders/a1")).status_code == 204
        assert (await c.get("/api/orders/a1")).status_code == 404
        assert (await c.delete("/api/orders/a1")).status_code == 404
        assert (await c.put("/api/orders/a1", json={"item": "x"})).status_code == 404


async def test_bad_input_is_400_and_missing_is_404() -> None:
    async with run_engine(ORDERS, functions={"label": label}) as h:
        c = h.client
        invalid = await c.post("/api/orders", json={"qty": 0})
        assert invalid.status_code == 400
        details = invalid.json()["error"]["details"]
        assert {d["path"] for d in details} == {"/", "/qty"}
        assert (await c.post("/api/orders", json=[1])).status_code == 400
        assert (await c.get("/api/orders/nope")).status_code == 404
        missing = await c.put("/api/orders/nope/transition", json={"transition": "pay"})
        assert missing.status_code == 404
        created = (await c.post("/api/orders", json={"item": "x"})).json()
        nameless = await c.put(f"/api/orders/{created['id']}/transition", json={"data": {}})
        assert nameless.status_code == 400
        unknown = await c.put(f"/api/orders/{created['id']}/transition", json={"transition": "x"})
        assert unknown.status_code == 400 and "unknown transition" in unknown.text


async def test_failing_hook_refuses_the_transition_with_409() -> None:
    async with run_engine(ORDERS, functions={"label": label}) as h:
        c = h.client
        oid = (await c.post("/api/orders", json={"item": "fragile"})).json()["id"]
        body = {"transition": "pay", "data": {"amount": 5}}
        await c.put(f"/api/orders/{oid}/transition", json=body)
        failed = await c.put(f"/api/orders/{oid}/transition", json={"transition": "ship"})
        assert failed.status_code == 409
        assert "courier" not in failed.text, "a crashed hook is logged, not described"
        assert (await c.get(f"/api/orders/{oid}")).json()["state"] == "paid", "rolled back"


async def test_unknown_workflow_type_fails_at_start() -> None:
    with pytest.raises(BuildError, match="workflowType: 'nope' is not a state machine"):
        config = ORDERS.replace("workflowType: order\n      init", "workflowType: nope\n      init")
        async with run_engine(config, functions={"label": label}):
            pass
