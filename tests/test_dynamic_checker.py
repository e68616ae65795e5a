"""The static check and the runtime guards on ordinary (non-hostile) component code."""

from __future__ import annotations

from typing import Any

import pytest

from flownb.dynamic.checker import check, format_problem
from flownb.dynamic.contract import DEFAULT_IMPORTS, CheckError
from flownb.dynamic.sandbox import Imports, guarded_getattr, load_hooks, restricted_globals

EVERYDAY = '''
"""A component using the everyday language: it must pass the check and run."""
import json
import math
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
import collections.abc

name = "everyday"
totals = {"calls": 0}


class Order:
    def __init__(self, items):
        self.items = items
        self.count = len(items)

    def total(self):
        return sum(i["price"] * i["qty"] for i in self.items)


def init(config, services):
    totals["rate"] = config.get("rate", 1)


def execute(ctx, data):
    totals["calls"] += 1
    order = Order(data["items"])
    order.count += 0
    words = Counter(w.lower() for w in re.findall(r"\\w+", data.get("text", "")))
    groups = defaultdict(list)
    for item in data["items"]:
        groups[item["kind"]].append(item["sku"])
    first, *rest = data["items"]
    label = "{} items, {:.2f} total".format(order.count, order.total())
    when = datetime(2024, 1, 1) + timedelta(days=1)
    return {
        "label": label,
        "fstring": f"{order.count!r:>3}",
        "sqrt": math.sqrt(16),
        "words": dict(words),
        "groups": dict(groups),
        "first": first["sku"],
        "rest": len(rest),
        "when": when.isoformat(),
        "money": str(Decimal("1.10") * 2),
        "json": json.dumps({"a": 1}),
        "calls": totals["calls"],
        "mapping": isinstance({}, collections.abc.Mapping),
        "rate": totals["rate"],
        "sorted": sorted([3, 1, 2]),
        "lambda": list(map(lambda x: x * 2, [1, 2])),
    }
'''

INPUT = {
    "text": "a b a",
    "items": [
        {"sku": "x", "kind": "book", "price": 2.5, "qty": 2},
        {"sku": "y", "kind": "pen", "price": 1.0, "qty": 1},
    ],
}


def run(text: str, ctx: Any = None, data: Any = None, config: Any = None) -> Any:
    imports = Imports(DEFAULT_IMPORTS)
    code = check(text, "c.py", DEFAULT_IMPORTS)
    hooks = load_hooks(code, restricted_globals(imports), "c")
    if hooks.init is not None:
        hooks.init(config or {}, None)
    return hooks.execute(ctx or {}, data)


def test_everyday_code_passes_and_runs() -> None:
    result = run(EVERYDAY, data=INPUT, config={"rate": 3})
    assert result["label"] == "2 items, 6.00 total"
    assert result["fstring"] == "  2"
    assert result["sqrt"] == 4.0
    assert result["words"] == {"a": 2, "b": 1}
    assert result["groups"] == {"book": ["x"], "pen": ["y"]}
    assert (result["first"], result["rest"]) == ("x", 1)
    assert result["when"] == "2024-01-02T00:00:00"
    assert result["money"] == "2.20"
    assert result["json"] == '{"a": 1}'
    assert result["calls"] == 1
    assert result["mapping"] is True
    assert result["rate"] == 3
    assert result["sorted"] == [1, 2, 3]
    assert result["lambda"] == [2, 4]


def test_async_hooks_are_allowed() -> None:
    code = check("async def execute(ctx, data):\n    return {'a': 1}\n", "c.py")
    hooks = load_hooks(code, restricted_globals(Imports(())), "c")
    coro = hooks.execute({}, {})
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    assert done.value.value == {"a": 1}


def test_async_for_is_refused() -> None:
    with pytest.raises(CheckError, match="AsyncFor"):
        check("async def f(x):\n    async for i in x:\n        pass\n", "c.py")


def test_every_problem_reported_with_line_and_column() -> None:
    text = "import os\n\ndef execute(ctx, data):\n    return data.__class__\n"
    with pytest.raises(CheckError) as caught:
        check(text, "c.py", DEFAULT_IMPORTS)
    lines = caught.value.lines()
    assert lines[0].startswith("c.py:1:1: import of 'os' is not allowed")
    assert lines[1].startswith("c.py:4:12: ")
    assert "__class__" in lines[1]


def test_syntax_error_located() -> None:
    with pytest.raises(CheckError) as caught:
        check("def execute(ctx, data)\n    return {}\n", "c.py")
    problem = caught.value.problems[0]
    assert (problem.line, problem.message.split(":")[0]) == (1, "syntax error")


def test_import_allowlist_is_configurable() -> None:
    check("import math\n", "c.py", ["math"])
    with pytest.raises(CheckError, match="import of 'json' is not allowed"):
        check("import json\n", "c.py", ["math"])


def test_names_shadowing_builtins_are_fine() -> None:
    # `input`/`type` are refused only as the built-ins; a component's own variables may use them
    result = run(
        "def execute(ctx, data):\n    input = data['x']\n    return {'x': input}\n", data={"x": 1}
    )
    assert result == {"x": 1}


def test_annotations_are_dropped() -> None:
    text = "def execute(ctx: 'dict', data: '().__class__') -> 'dict':\n    return {}\n"
    code = check(text, "c.py")
    hooks = load_hooks(code, restricted_globals(Imports(())), "c")
    assert hooks.execute.__annotations__ == {}


def test_augmented_assignment_through_guards() -> None:
    text = (
        "class C:\n    def __init__(self):\n        self.n = 1\n"
        "def execute(ctx, data):\n"
        "    c = C()\n    c.n += 2\n    d = {'k': [1]}\n    d['k'] += [2]\n    n = 1\n    n *= 5\n"
        "    return {'n': c.n, 'k': d['k'], 'm': n}\n"
    )
    assert run(text) == {"n": 3, "k": [1, 2], "m": 5}


def test_augmented_assignment_on_foreign_object_refused() -> None:
    text = "import json\ndef execute(ctx, data):\n    d = json.JSONDecoder()\n    d.strict += 1\n"
    with pytest.raises(TypeError, match="cannot change"):
        run(text)


def test_format_problem() -> None:
    assert format_problem("{0} {name} {0[key]} {x!r:>4}") is None
    assert format_problem("{0.attr}") is not None
    assert format_problem("{0:{1.attr}}") is not None


def test_guarded_getattr_refuses_private_and_internal_names() -> None:
    with pytest.raises(AttributeError, match="private"):
        guarded_getattr(1, "__class__")
    with pytest.raises(AttributeError, match="internals"):
        guarded_getattr(1, "gi_frame")
    assert guarded_getattr("a{}", "format")("b") == "ab"
    with pytest.raises(ValueError, match="reads an attribute"):
        guarded_getattr("{0.__class__}", "format")(1)
    with pytest.raises(ValueError, match="reads an attribute"):
        guarded_getattr(str, "format")("{0.real}", 1)


def test_contract_errors() -> None:
    from flownb.dynamic.sandbox import ContractError

    with pytest.raises(ContractError, match="must define execute"):
        load_hooks(check("name = 'x'\n", "c.py"), restricted_globals(Imports(())), "c")
    with pytest.raises(ContractError, match="'init' must be a function"):
        text = "init = 3\ndef execute(ctx, data):\n    return {}\n"
        load_hooks(check(text, "c.py"), restricted_globals(Imports(())), "c")
