"""Every example loads, round-trips through dump, and does what its header says."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flownb.clock import ManualClock
from flownb.loader import dump_config, load_config, parse_config
from flownb.testing import Harness, run_engine

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL = sorted(EXAMPLES.glob("*/*.yaml"))
SERVICES = ("HELLO", "ORDERS", "CHAT", "REPORT", "PAYMENTS", "INVENTORY")
ADDRESSES = {f"{name}_ADDRESS": "127.0.0.1:0" for name in SERVICES}


def example(name: str) -> str:
    return next(p for p in ALL if p.stem == name).read_text()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
    """Poll `check` until it returns something truthy (asynchronous effects: broker hops)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.01)


def test_there_are_the_documented_examples() -> None:
    names = {p.parent.name for p in ALL}
    assert names >= {"hello", "orders", "chat", "scheduled", "events", "inventory"}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.parent.name)
def test_example_round_trips_through_dump(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ADDRESSES:
        monkeypatch.delenv(key, raising=False)
    config = load_config(path)
    dumped = dump_config(config)
    assert "${" in dumped, "environment references are written back, not their values"
    assert parse_config(dumped, environ=dict(os.environ)) == config


async def test_hello() -> None:
    async with run_engine(example("hello"), environ=ADDRESSES) as h:
        reply = await h.client.get("/hello", params={"n": "1"})
        assert reply.status_code == 200
        assert reply.json() == {"hello": "world", "q": "1"}


async def post(h: Harness, path: str, body: dict[str, Any]) -> httpx.Response:
    return await h.client.post(path, json=body)


async def test_orders_flow_to_notified_with_events_and_notifications() -> None:
    async with run_engine(example("orders"), environ=ADDRESSES) as h:
        created = await post(
            h, "/orders", {"item": "book", "qty": 2, "price": 12.5, "customer": "ada"}
        )
        assert created.status_code == 201, created.text
        order = created.json()
        assert order["state"] == "notified"
        assert order["total"] == 25.0 and "storedAt" in order and "notifiedAt" in order

        fetched = (await h.client.get(f"/orders/{order['id']}")).json()
        assert fetched["state"] == "notified" and fetched["total"] == 25.0

        async def three_events() -> list[dict[str, Any]] | None:
            events = (await h.client.get("/events")).json()["events"]
            return events if len(events) == 3 else None

        events = await eventually(three_events)
        assert [e["transition"] for e in events] == ["validate", "store", "notify"]
        assert all(e["instanceId"] == order["id"] for e in events)

        async def notified() -> list[dict[str, Any]]:
            return (await h.client.get("/notifications")).json()["notifications"]  # type: ignore[no-any-return]

        (note,) = await eventually(notified)
        assert note == {
            "orderId": order["id"],
            "customer": "ada",
            "text": "Your order of 2 x book is on its way.",
        }

        listing = (await h.client.get("/orders")).json()
        assert [o["id"] for o in listing] == [order["id"]]


async def test_orders_rejects_big_orders_and_bad_input() -> None:
    async with run_engine(example("orders"), environ=ADDRESSES) as h:
        big = await post(h, "/orders", {"item": "book", "qty": 500, "price": 1})
        assert big.status_code == 201 and big.json()["state"] == "rejected"
        bad = await post(h, "/orders", {"item": "book"})
        assert bad.status_code == 400
        assert "'qty' is a required property" in bad.text
        assert bad.json()["error"]["requestId"]
        done = (await post(h, "/orders", {"item": "pen", "qty": 1, "price": 2})).json()
        refused = await h.client.put(
            f"/orders/{done['id']}/transition", json={"transition": "cancel"}
        )
        assert refused.status_code == 409
        assert (await h.client.get(f"/orders/{done['id']}")).json()["state"] == "notified"
        assert (await h.client.get("/orders/nope")).status_code == 404


async def test_chat_fans_out_to_archive_and_counter() -> None:
    async with run_engine(example("chat"), environ=ADDRESSES) as h:
        for text in ("hi", "how are you?"):
            reply = await post(h, "/rooms/lobby/messages", {"user": "ada", "text": text})
            assert reply.status_code == 202 and reply.json()["accepted"] is True
        await post(h, "/rooms/other/messages", {"user": "bob", "text": "elsewhere"})

        async def archived() -> list[dict[str, Any]] | None:
            messages = (await h.client.get("/rooms/lobby/messages")).json()["messages"]
            return messages if len(messages) == 2 else None

        messages = await eventually(archived)
        assert [m["text"] for m in messages] == ["hi", "how are you?"]
        assert all(m["room"] == "lobby" and m["user"] == "ada" and m["at"] for m in messages)

        async def counted() -> bool:
            return (await h.client.get("/rooms/lobby/stats")).json()["messages"] == 2  # type: ignore[no-any-return]

        await eventually(counted)
        bad = await post(h, "/rooms/lobby/messages", {"user": "", "text": "x"})
        assert bad.status_code == 400


async def test_scheduled_heartbeat_and_cron_report() -> None:
    clock = ManualClock(1_700_000_000.0)
    env = {**ADDRESSES, "HEARTBEAT_INTERVAL": "2s"}
    async with run_engine(example("report"), environ=env, clock=clock) as h:

        async def beats() -> int:
            return (await h.client.get("/report")).json()["beats"]  # type: ignore[no-any-return]

        await clock.settle(sleepers=2)
        await eventually(lambda: _at_least(beats, 1))  # runOnStart
        for expected in (2, 3, 4):
            clock.advance(2)
            await clock.settle(sleepers=2)
            await eventually(lambda n=expected: _at_least(beats, n))  # type: ignore[misc]
        clock.advance(24 * 3600)  # past 03:00: the cron trigger fires once
        await clock.settle(sleepers=2)
        report = (await h.client.get("/report")).json()
        assert report["reports"] == 1 and report["lastBeat"]
        run_now = await h.client.post("/report/run")
        assert run_now.status_code == 200 and run_now.json()["report"] == "done"


async def _at_least(fn: Callable[[], Awaitable[int]], n: int) -> int | None:
    value = await fn()
    return value if value >= n else None


async def test_payments_pattern_and_event_trigger() -> None:
    async with run_engine(example("payments"), environ=ADDRESSES) as h:
        for _ in range(3):
            reply = await post(
                h, "/payments", {"type": "payment.failed", "account": "acc-1", "amount": 20}
            )
            assert reply.status_code == 202
        await post(h, "/payments", {"type": "payment.failed", "account": "acc-2", "amount": 5})
        await post(h, "/payments", {"type": "payment.large", "account": "acc-3", "amount": 9000})

        async def alerts() -> list[dict[str, Any]]:
            return (await h.client.get("/alerts")).json()["alerts"]  # type: ignore[no-any-return]

        (alert,) = await eventually(alerts)
        assert alert == {"pattern": "card-testing", "account": "acc-1", "failures": 3}

        async def reviews() -> list[dict[str, Any]]:
            return (await h.client.get("/reviews")).json()["reviews"]  # type: ignore[no-any-return]

        (review,) = await eventually(reviews)
        assert review == {"account": "acc-3", "amount": 9000}
        bad = await post(h, "/payments", {"type": "payment.weird", "account": "a", "amount": 1})
        assert bad.status_code == 400


async def test_inventory_stock_over_sqlite_with_low_stock_alerts(tmp_path: Path) -> None:
    environ = {**ADDRESSES, "INVENTORY_DB": f"sqlite:///{tmp_path / 'inventory.db'}"}
    async with run_engine(example("inventory"), environ=environ) as h:
        item = {"sku": "b-1", "name": "book", "qty": 5}
        created = await post(h, "/items", item)
        assert (created.status_code, created.json()) == (201, item)
        again = await post(h, "/items", item)
        assert again.status_code == 409 and "UNIQUE" in again.json()["error"]["message"]
        assert (await h.client.get("/items/b-1")).json() == item
        missing = await h.client.get("/items/nope")
        assert (missing.status_code, missing.json()) == (404, {"error": "no item nope"})

        first = await post(h, "/items/b-1/take", {"qty": 2})
        assert first.json() == {"sku": "b-1", "qty": 3}
        assert (await h.client.get("/alerts")).json() == [], "3 left is not low"
        second = await post(h, "/items/b-1/take", {"qty": 2})
        assert second.json() == {"sku": "b-1", "qty": 1}
        refused = await post(h, "/items/b-1/take", {"qty": 2})
        assert refused.status_code == 409, "the check and the update are one statement"
        assert (await post(h, "/items/b-1/take", {"qty": 0})).status_code == 400

        async def alerts() -> Any:
            return (await h.client.get("/alerts")).json()

        [alert] = await eventually(alerts)
        assert (alert["sku"], alert["qty"]) == ("b-1", 1)
        assert (await h.client.get("/items/b-1")).json()["qty"] == 1
