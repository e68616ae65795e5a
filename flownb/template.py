"""Safe templates and expressions for config values: Jinja2's immutable sandbox, never `eval`.

A config value is compiled once, at build time, into a function of the execution scope:
- text without `{{`/`{%` is a constant;
- text that is exactly one `{{ expression }}` yields the expression's native value (a number
  stays a number, a dict a dict);
- any other text is rendered as a template to a string;
- dicts and lists are compiled item by item.
Plain dotted paths and simple expressions skip Jinja's rendering machinery for speed
(`flownb.expressions`) but keep its sandbox rules (no names starting with `_`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flownb.errors import FlownbError
from flownb.expressions import compile_fast

Scope = Mapping[str, Any]
Compiled = Callable[[Scope], Any]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.S)


class TemplateSyntaxError(FlownbError):
    """A template or expression in the config does not parse."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


def _uuid() -> str:
    return uuid.uuid4().hex


def _guarded(fn: Compiled, source: str) -> Compiled:
    """Report evaluation errors (None * 3, a missing key compared...) with the expression."""

    def evaluate(scope: Scope) -> Any:
        try:
            return fn(scope)
        except (TypeError, ValueError, ZeroDivisionError, IndexError, TemplateError) as exc:
            raise FlownbError(f"expression {source!r} failed: {exc}") from None

    return evaluate


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


class Templates:
    """Compiles config values against one sandboxed Jinja environment (one per engine)."""

    def __init__(self) -> None:
        env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
        env.globals.update(now=_now, uuid4=_uuid)
        env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
        self.env = env

    def expression(self, source: str) -> Compiled:
        """Compile a bare expression (`data.total > 100`) to a function of the scope."""
        try:
            parser = Parser(self.env, source, state="variable")
            node = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateError(f"unexpected {parser.stream.current.value!r}")
            fast = compile_fast(node, self.env)
            if fast is not None:
                return _guarded(fast, source)
            expr = self.env.compile_expression(source, undefined_to_none=True)
        except TemplateError as exc:
            raise TemplateSyntaxError(f"invalid expression {source!r}: {exc}") from None

        def evaluate(scope: Scope) -> Any:
            try:
                return expr(scope)
            except TemplateError as exc:
                raise FlownbError(f"expression {source!r} failed: {exc}") from None

        return evaluate

    def condition(self, source: str | bool) -> Compiled:
        """Compile a condition; accepts a bare expression or one wrapped in `{{ }}`."""
        if isinstance(source, bool):
            return lambda _scope: source
        m = _SINGLE_EXPR.match(source)
        fn = self.expression(m.group("expr") if m else source)
        return lambda scope: bool(fn(scope))

    def value(self, value: Any) -> Compiled:
        """Compile a config value (possibly nested) into a function of the scope."""
        if isinstance(value, str):
            if not is_template(value):
                return _Constant(value)
            m = _SINGLE_EXPR.match(value)
            if m and "{%" not in value:
                return self.expression(m.group("expr"))
            return self._template(value)
        if isinstance(value, dict):
            items = [(k, self.value(v)) for k, v in value.items()]
            if all(isinstance(fn, _Constant) for _, fn in items):
                return _Constant(value)
            return lambda scope: {k: fn(scope) for k, fn in items}
        if isinstance(value, list | tuple):
            fns = [self.value(v) for v in value]
            if all(isinstance(fn, _Constant) for fn in fns):
                return _Constant(list(value))
            return lambda scope: [fn(scope) for fn in fns]
        return _Constant(value)

    def _template(self, source: str) -> Compiled:
        try:
            template = self.env.from_string(source)
        except TemplateError as exc:
            raise TemplateSyntaxError(f"invalid template {source!r}: {exc}") from None

        def render(scope: Scope) -> str:
            try:
                return template.render(scope)
            except TemplateError as exc:
                raise FlownbError(f"template {source!r} failed: {exc}") from None

        return render


class _Constant:
    """A value with no template in it; containers are copied so no execution shares them."""

    __slots__ = ("copy", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.copy = isinstance(value, dict | list)

    def __call__(self, _scope: Scope) -> Any:
        return copy.deepcopy(self.value) if self.copy else self.value
