"""Execution history: the recorder observer, the memory store, the table."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from typing import Any

import orjson
import pytest

from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.history import (
    VALUES,
    ExecutionRecord,
    ExecutionRow,
    HistoryRecorder,
    HistoryStore,
    MemoryHistory,
    Row,
    history_table,
    json_text,
)
from flownb.loader import parse_config
from flownb.testing import run_engine

STEPS = """\
pipelines:
  order:
    - {type: set, name: priced, target: data, values: {total: "{{ data.qty * 2 }}"}}
    - {type: call, name: checked, function: check, input: "{{ data }}", output: verdict}
    - {type: call, name: stamped, function: stamp, replace_data: true}
  broken:
    - {type: set, name: fine, target: vars, values: {a: 1}}
    - {type: call, name: fails, function: fail}
"""


def check(data: Any) -> dict[str, Any]:
    return {"ok": data["total"] > 0}


def stamp(data: Any) -> dict[str, Any]:
    return {**data, "stamped": True}


def fail(data: Any) -> None:
    raise RuntimeError("out of stock")


def record(id: str, status: str = "ok") -> ExecutionRecord:
    return ExecutionRecord(id, "direct", "pipeline", "p", status, 0.0, 1.0)


def test_memory_history_is_a_ring_buffer_newest_first() -> None:
    store = MemoryHistory(capacity=3)
    assert isinstance(store, HistoryStore)
    for i, status in enumerate(["ok", "error", "ok", "error", "ok"]):
        store.add(ExecutionRow.of(record(str(i), status)))
    assert len(store) == 3
    assert [r.id for r in store.select()] == ["4", "3", "2"]
    assert [r.id for r in store.select(limit=1)] == ["4"]
    assert [r.id for r in store.select(status="error")] == ["3"]
    store.clear()
    assert store.select() == []


async def engine_with(store: HistoryStore, **recorder: Any) -> Engine:
    engine = Engine(
        parse_config(STEPS),
        functions={"check": check, "stamp": stamp, "fail": fail},
        observers=[HistoryRecorder(store, **recorder)],
    )
    await engine.start()
    return engine


async def test_each_execution_is_recorded_with_its_steps() -> None:
    store = MemoryHistory()
    engine = await engine_with(store)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 3}, request_id="req-1")
        with pytest.raises(FlownbError, match="out of stock"):
            await engine.trigger_workflow("pipeline", "broken", {"qty": 1})
    finally:
        await engine.stop()
    failed, ok = store.select()
    assert (ok.workflow, ok.action, ok.node, ok.status, ok.trigger) == (
        "pipeline",
        "order",
        "order",
        "ok",
        "direct",
    )
    assert ok.request_id == "req-1" and ok.duration_ms > 0 and ok.started > 1e9
    assert [s.name for s in ok.steps] == ["priced", "checked", "stamped"]
    assert all(s.status == "ok" and s.duration_ms >= 0 for s in ok.steps)
    priced, checked, stamped = ok.steps
    assert json.loads(ok.input or "") == {"qty": 3}
    assert json.loads(priced.input or "") == {"qty": 3}
    assert json.loads(checked.input or "") == {"qty": 3, "total": 6}, "the data after priced"
    assert json.loads(checked.output or "") == {"ok": True}
    assert json.loads(stamped.output or "") == {"qty": 3, "total": 6, "stamped": True}
    assert json.loads(ok.output or "") == {"qty": 3, "total": 6, "stamped": True}

    assert failed.status == "error" and failed.output is None
    assert failed.error is not None and "out of stock" in failed.error
    assert [(s.name, s.status) for s in failed.steps] == [("fine", "ok"), ("fails", "error")]
    assert "out of stock" in (failed.steps[1].error or "")


async def test_inputs_and_outputs_are_capped() -> None:
    store = MemoryHistory()
    engine = await engine_with(store, max_bytes=100)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 1, "note": "x" * 10_000})
    finally:
        await engine.stop()
    [rec] = store.select()
    for text in (rec.input, rec.output, *(s.input for s in rec.steps)):
        assert text is not None and len(text) < 140 and text.endswith("bytes)")


async def test_a_small_execution_is_kept_whole_and_a_big_one_cut_per_value() -> None:
    store = MemoryHistory()
    engine = await engine_with(store, max_bytes=20, max_record_bytes=2000)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 1, "note": "x" * 100})
        await engine.trigger_workflow("pipeline", "order", {"qty": 1, "note": "x" * 1000})
    finally:
        await engine.stop()
    big, small = store.select()
    assert json.loads(small.input or "") == {"qty": 1, "note": "x" * 100}, "under 2000: whole"
    assert json.loads(small.steps[2].output or "")["stamped"] is True
    assert big.input is not None and big.input.endswith("bytes)") and len(big.input) < 60
    assert [s.name for s in big.steps] == ["priced", "checked", "stamped"]


async def test_data_the_steps_leave_alone_is_encoded_once() -> None:
    """Four steps over a 5 KB payload: the trace holds it once (with the input and the result,
    15 KB, not 30), so the record stays under the default 16 KiB and is kept whole."""
    steps = "".join(
        f"    - {{type: set, name: s{i}, target: vars, values: {{n: {i}}}}}\n" for i in range(4)
    )
    store = MemoryHistory()
    engine = Engine(
        parse_config(f"pipelines:\n  p:\n{steps}"),
        observers=[HistoryRecorder(store)],
    )
    await engine.start()
    payload = {"blob": "x" * 5000}
    try:
        await engine.trigger_workflow("pipeline", "p", payload)
    finally:
        await engine.stop()
    [rec] = store.select()
    assert [s.name for s in rec.steps] == ["s0", "s1", "s2", "s3"]
    assert all(json.loads(s.input or "") == payload for s in rec.steps)
    assert [json.loads(s.output or "") for s in rec.steps][3] == {"n": 3}


async def test_a_value_json_cannot_take_is_recorded_as_its_repr() -> None:
    store = MemoryHistory()
    engine = await engine_with(store)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 2**70})
    finally:
        await engine.stop()
    [rec] = store.select()
    assert rec.status == "ok" and str(2**70) in (rec.input or "")
    assert [s.status for s in rec.steps] == ["ok", "ok", "ok"]


async def test_values_beyond_plain_json_are_kept_whole() -> None:
    """Sets, integer keys and a failed step's error take the recorder's second encoding
    (with a default and options); the record is still one whole value, not cut texts."""
    store = MemoryHistory()
    engine = await engine_with(store)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 1, "tags": {"a"}, 7: "seven"})
        with pytest.raises(FlownbError):
            await engine.trigger_workflow("pipeline", "broken", {"n": 1})
    finally:
        await engine.stop()
    failed, done = store.select()
    assert json.loads(done.input or "") == {"qty": 1, "tags": ["a"], "7": "seven"}
    assert json.loads(done.steps[0].input or "") == {"qty": 1, "tags": ["a"], "7": "seven"}
    assert [s.status for s in failed.steps] == ["ok", "error"]
    assert "out of stock" in (failed.steps[1].error or "")
    assert json.loads(failed.input or "") == {"n": 1}
    layouts = [orjson.loads(row[-1])[0] for row in store._records]  # `detail`: the last
    assert layouts == [VALUES, VALUES], "one encoding of each execution, not a text per value"


async def test_secrets_are_replaced_before_anyone_reads_them() -> None:
    store = MemoryHistory()
    engine = await engine_with(store)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 1, "api_key": "k-123"})
    finally:
        await engine.stop()
    [rec] = store.select()
    texts = [rec.input, rec.output, *(s.input for s in rec.steps), *(s.output for s in rec.steps)]
    assert not any("k-123" in (t or "") for t in texts)
    assert '"api_key":"[redacted]"' in (rec.input or "")
    assert store.select()[0].steps[0].input == rec.input


def test_screen_searches_a_batch_once_and_rewrites_only_what_it_flags() -> None:
    from flownb.history import Redactor

    redactor = Redactor()
    clean = [b'{"a":1}', b'{"b":"plain"}']
    assert redactor.screen(clean) is clean, "nothing flagged: the same list, no copy"
    batch = [b'{"a":1}', b'{"Cookie":"c","list":[{"PRIVATE_KEY":"p"}]}', b'{"x":"my tokenizer"}']
    assert redactor.screen(batch) == [
        b'{"a":1}',
        b'{"Cookie":"[redacted]","list":[{"PRIVATE_KEY":"[redacted]"}]}',
        b'{"x":"my tokenizer"}',
    ]
    assert batch[1] == b'{"Cookie":"c","list":[{"PRIVATE_KEY":"p"}]}', "the input is left as is"
    assert Redactor(()).screen([b'{"password":"p"}']) == [b'{"password":"p"}']


def test_screen_flags_every_record_holding_a_word_when_words_overlap_or_touch() -> None:
    from flownb.history import Redactor

    redactor = Redactor()
    # words that overlap or touch ("passwordtoken", "secretsecret"), a word inside a key, a
    # word as a value (flagged, nothing to replace), a word in a nested key, clean records
    batch = [
        b'{"passwordtoken":"a"}',
        b'{"n":1}',
        b'{"x_api_keyring":"b","secretsecret":"c"}',
        b'{"token":"d"}',
        b'{"k":"private_key"}',
        b'{"credentials":{"authorization":"e"}}',
        b'{"n":2}',
    ]
    assert redactor.screen(batch) == [
        b'{"passwordtoken":"[redacted]"}',
        b'{"n":1}',
        b'{"x_api_keyring":"[redacted]","secretsecret":"[redacted]"}',
        b'{"token":"[redacted]"}',
        b'{"k":"private_key"}',  # flagged by the search; the walk finds no key to replace
        b'{"credentials":"[redacted]"}',
        b'{"n":2}',
    ]


async def test_timings_only() -> None:
    store = MemoryHistory()
    engine = await engine_with(store, capture=False)
    try:
        await engine.trigger_workflow("pipeline", "order", {"qty": 1})
    finally:
        await engine.stop()
    [rec] = store.select()
    assert rec.input is None and rec.output is None and len(rec.steps) == 3
    assert all(s.input is None and s.output is None for s in rec.steps)


async def test_http_and_message_triggers_are_named() -> None:
    text = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router}
  - {name: bus, type: messaging.broker}
  - {name: sink, type: messaging.handler, config: {pipeline: got}}
workflows:
  http: {routes: [{method: POST, path: /in, handler: take}]}
  messaging: {subscriptions: [{topic: t, handler: sink}]}
pipelines:
  take:
    - {type: publish, topic: t, message: "{{ data }}"}
    - {type: respond, status: 202}
  got: [{type: log, message: got it}]
"""
    both = asyncio.Event()

    class Store(MemoryHistory):
        def add(self, row: Row) -> None:
            super().add(row)
            if len(self) == 2:
                both.set()

    store = Store()
    async with run_engine(text, observers=[HistoryRecorder(store)]) as h:
        assert (await h.client.post("/in", json={"a": 1})).status_code == 202
        await asyncio.wait_for(both.wait(), 5)  # the message is handled after the reply
    triggers = {r.node: r.trigger for r in store.select()}
    assert triggers == {"take": "http", "sink": "message"}


def test_table_has_a_column_per_step_and_works_without_pandas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flownb.history import StepRecord

    rec = record("1")
    rec.steps = [StepRecord("a", "ok", 1.5), StepRecord("b", "ok", 2.0)]
    other = record("2", "error")
    other.steps = [StepRecord("a", "error", 0.5, "boom")]
    table = history_table([rec, other])
    assert list(table["step:a"]) == [1.5, 0.5]
    assert table["step:b"].isna().tolist() == [False, True]
    assert list(table["status"]) == ["ok", "error"]
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = history_table([rec])
    assert rows[0]["steps"][1]["name"] == "b" and rows[0]["status"] == "ok"


def test_json_text_never_fails() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    assert json_text({"when": Odd(), 1: {2, 3}}, 100) == '{"when":"<odd>","1":[2,3]}'
    assert json_text(ValueError("no"), 100) == '"ValueError: no"'
    assert json_text("é" * 100, 11).startswith('"ééééé')


async def test_rows_waiting_for_a_writer_leave_the_garbage_collector_alone() -> None:
    """The recorder's rows are plain tuples, which the collector stops tracking at its first
    pass: rows queued for a writer are never promoted to the oldest generation, where they
    would set off full collections."""
    store = MemoryHistory()
    engine = await engine_with(store)
    try:
        for qty in range(1, 4):
            await engine.trigger_workflow("pipeline", "order", {"qty": qty})
    finally:
        await engine.stop()
    gc.collect(0)
    rows = list(store._records)
    assert len(rows) == 3 and not any(gc.is_tracked(row) for row in rows)
    assert [r.steps[0].name for r in store.select()] == ["priced"] * 3


def test_rows_of_earlier_versions_read_with_their_durations_in_seconds() -> None:
    """Layouts 0 and 1 kept step durations in seconds; they read as milliseconds still."""
    values = orjson.dumps((0, {"a": 1}, {"b": 2}, [["s", "ok", 0.25, None]], {"s": {"c": 3}}))
    texts = orjson.dumps((1, '{"a":1}', None, [["t", "ok", 0.5, None, "1", "2"]], None))
    columns = ("id", "direct", "pipeline", "act", "ok", 1.0, 1.0, None, None, None)
    [step] = ExecutionRow._make((*columns, values)).record().steps
    assert (step.name, step.duration_ms, step.input, step.output) == (
        "s",
        250.0,
        '{"a":1}',
        '{"c":3}',
    )
    [step] = ExecutionRow._make((*columns, texts)).record().steps
    assert (step.name, step.duration_ms, step.input, step.output) == ("t", 500.0, "1", "2")
