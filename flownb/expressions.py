"""A fast evaluator for the common subset of Jinja expressions.

Jinja renders every expression through a fresh template context (about 10 microseconds);
conditions and computed values run on every execution, so we compile the parsed Jinja AST of
simple expressions (names, attribute and item access, literals, arithmetic, comparisons,
`and`/`or`/`not`, `x if c else y`, `~`) into plain closures instead. Anything else (filters,
tests, calls) returns None here and the caller uses Jinja itself. The sandbox rules hold:
names and attributes starting with `_` are refused, objects other than dicts and lists are
read through the sandboxed environment's `getattr`/`getitem`.

On dicts (JSON data), `a.b` reads key `b` (not a dict method of that name); a missing key gives
None, and None propagates through further attribute access, as Jinja's chainable undefined does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

# A view type (the HTTP request, a broker message) may list the attributes templates read as
# `template_fields`; those are read directly, everything else through the sandbox.

Scope = Mapping[str, Any]
Fn = Callable[[Scope], Any]

_BINOPS: dict[type[nodes.Node], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Mul: operator.mul,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mod: operator.mod,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


class Unsupported(Exception):
    """The expression uses something outside the fast subset."""


def compile_fast(node: nodes.Expr, env: SandboxedEnvironment) -> Fn | None:
    """A closure evaluating `node`, or None if it needs full Jinja."""
    try:
        return _compile(node, env)
    except Unsupported:
        return None


def _read(obj: Any, key: Any, env: SandboxedEnvironment) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    if isinstance(obj, list | tuple) and isinstance(key, int):
        return obj[key] if -len(obj) <= key < len(obj) else None
    if isinstance(key, str):
        if key in getattr(type(obj), "template_fields", ()):
            return getattr(obj, key)
        if key.startswith("_"):
            return None  # what the sandbox gives for private attributes
        value = env.getattr(obj, key)
    else:
        value = env.getitem(obj, key)
    return None if isinstance(value, Undefined) else value


def _compile(node: nodes.Node, env: SandboxedEnvironment) -> Fn:  # noqa: PLR0912
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda _s: value
    if isinstance(node, nodes.Name):
        name = node.name
        if name.startswith("_"):
            raise Unsupported
        if name in ("true", "True"):
            return lambda _s: True
        if name in ("false", "False"):
            return lambda _s: False
        if name in ("none", "None"):
            return lambda _s: None
        globals_ = env.globals
        return lambda s: s[name] if name in s else globals_.get(name)
    if isinstance(node, nodes.Getattr):
        if node.attr.startswith("_"):
            raise Unsupported
        inner, attr = _compile(node.node, env), node.attr
        return lambda s: _read(inner(s), attr, env)
    if isinstance(node, nodes.Getitem):
        if not isinstance(node.arg, nodes.Const) and not isinstance(node.arg, nodes.Name):
            raise Unsupported
        inner, key = _compile(node.node, env), _compile(node.arg, env)

        def getitem(s: Scope) -> Any:
            k = key(s)
            if isinstance(k, str) and k.startswith("_"):
                raise ValueError(f"access to {k!r} is not allowed")
            return _read(inner(s), k, env)

        return getitem
    if type(node) in _BINOPS:
        op = _BINOPS[type(node)]
        left, right = _compile(node.left, env), _compile(node.right, env)  # type: ignore[attr-defined]
        return lambda s: op(left(s), right(s))
    if isinstance(node, nodes.Neg):
        inner = _compile(node.node, env)
        return lambda s: -inner(s)
    if isinstance(node, nodes.Pos):
        return _compile(node.node, env)
    if isinstance(node, nodes.Not):
        inner = _compile(node.node, env)
        return lambda s: not inner(s)
    if isinstance(node, nodes.And):
        left, right = _compile(node.left, env), _compile(node.right, env)
        return lambda s: left(s) and right(s)
    if isinstance(node, nodes.Or):
        left, right = _compile(node.left, env), _compile(node.right, env)
        return lambda s: left(s) or right(s)
    if isinstance(node, nodes.Compare):
        return _compare(node, env)
    if isinstance(node, nodes.CondExpr):
        test, yes = _compile(node.test, env), _compile(node.expr1, env)
        no = _compile(node.expr2, env) if node.expr2 is not None else (lambda _s: None)
        return lambda s: yes(s) if test(s) else no(s)
    if isinstance(node, nodes.Concat):
        parts = [_compile(n, env) for n in node.nodes]
        return lambda s: "".join(_text(p(s)) for p in parts)
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_compile(n, env) for n in node.items]
        return lambda s: [i(s) for i in items]
    if isinstance(node, nodes.Dict):
        pairs = [(_compile(p.key, env), _compile(p.value, env)) for p in node.items]
        return lambda s: {k(s): v(s) for k, v in pairs}
    raise Unsupported


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _compare(node: nodes.Compare, env: SandboxedEnvironment) -> Fn:
    first = _compile(node.expr, env)
    ops = [(_COMPARE[o.op], _compile(o.expr, env)) for o in node.ops]
    if len(ops) == 1:
        ((op, right),) = ops
        return lambda s: op(first(s), right(s))

    def chain(s: Scope) -> bool:
        left = first(s)
        for op, right_fn in ops:
            right = right_fn(s)
            if not op(left, right):
                return False
            left = right
        return True

    return chain
