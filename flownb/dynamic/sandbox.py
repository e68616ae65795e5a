"""The runtime half of the sandbox: the globals checked code runs with, and its hooks.

Checked code (see `checker`) calls guards for every attribute read (`_getattr_`), item read,
iteration, unpacking and write. Here they refuse what the static check cannot see: private
and interpreter-internal attributes reached by name at run time, modules reached through other
objects' attributes, unsafe format strings passed as values, writes to objects the component
did not create. Imports return read-only copies of allowed modules that hold neither private
names nor other modules, minus a few functions that evaluate strings (`typing.get_type_hints`
and friends). The same globals serve the worker process and the trusted in-process mode.

Like `contract`, this module is imported by workers and must not import the engine.
"""

from __future__ import annotations

import builtins
import copy
import functools
import importlib
import inspect
import operator
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from types import CodeType, ModuleType
from typing import Any

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.PrintCollector import PrintCollector

from flownb.dynamic.checker import attribute_problem, format_problem
from flownb.dynamic.contract import HOOKS

SANDBOX_MODULE = "flownb.component"

# Public functions of allowed modules that evaluate strings or reach attributes by name.
DENIED: dict[str, frozenset[str]] = {
    "dataclasses": frozenset({"make_dataclass"}),
    "functools": frozenset({"singledispatch", "singledispatchmethod"}),
    "string": frozenset({"Formatter"}),
    "typing": frozenset({"get_type_hints", "ForwardRef", "evaluate_forward_ref"}),
    "uuid": frozenset({"getnode", "uuid1"}),
}

_EXTRA_BUILTINS = (
    "all",
    "any",
    "bin",
    "bytearray",
    "bytes",
    "classmethod",
    "dict",
    "enumerate",
    "filter",
    "frozenset",
    "iter",
    "list",
    "map",
    "max",
    "min",
    "next",
    "property",
    "reversed",
    "set",
    "sorted",
    "staticmethod",
    "sum",
    "tuple",
    "zip",
    "NotImplemented",
    "StopAsyncIteration",
    "TimeoutError",
)
_REMOVED_BUILTINS = ("setattr", "delattr", "_getattr_")

_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}

_MISSING = object()


def _refuse_attribute(name: object) -> None:
    if type(name) is not str:
        raise TypeError("attribute names must be strings")
    reason = attribute_problem(name)
    if reason is not None:
        raise AttributeError(reason)


def _safe_format(template: str, /, *args: Any, **kwargs: Any) -> str:
    if not isinstance(template, str):
        raise TypeError("format() needs a string")
    reason = format_problem(template)
    if reason is not None:
        raise ValueError(reason)
    return str.format(template, *args, **kwargs)


def _safe_format_map(template: str, mapping: Any, /) -> str:
    if not isinstance(template, str):
        raise TypeError("format_map() needs a string")
    reason = format_problem(template)
    if reason is not None:
        raise ValueError(reason)
    return str.format_map(template, mapping)


_SAFE_FORMAT = {"format": _safe_format, "format_map": _safe_format_map}


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """`obj.name` for checked code: private, internal and module-valued attributes refused."""
    _refuse_attribute(name)
    if name in _SAFE_FORMAT:
        if isinstance(obj, str):
            return functools.partial(_SAFE_FORMAT[name], obj)
        if isinstance(obj, type) and issubclass(obj, str):
            return _SAFE_FORMAT[name]
    value = getattr(obj, name) if default is _MISSING else getattr(obj, name, default)
    if isinstance(value, ModuleType) and not isinstance(obj, _ModuleCopy):
        raise AttributeError(f"attribute {name!r} is a module; import allowed modules instead")
    return value


def guarded_hasattr(obj: Any, name: str) -> bool:
    _refuse_attribute(name)
    return hasattr(obj, name)


def _own(obj: Any) -> bool:
    """Whether checked code made `obj` (an instance or a class defined in the component)."""
    kind = obj if isinstance(obj, type) else type(obj)
    return getattr(kind, "__module__", None) == SANDBOX_MODULE


def guarded_write(obj: Any) -> Any:
    """Target of `x.a = ...`, `x[k] = ...` and `del`: containers and the component's own objects."""
    if isinstance(obj, dict | list | bytearray):
        return obj
    if _own(obj):
        return obj
    raise TypeError(f"a component cannot change a {type(obj).__name__} it did not create")


def guarded_setattr(obj: Any, name: str, value: Any) -> None:
    _refuse_attribute(name)
    setattr(guarded_write(obj), name, value)


def guarded_delattr(obj: Any, name: str) -> None:
    _refuse_attribute(name)
    delattr(guarded_write(obj), name)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


class _ModuleCopy(ModuleType):
    """A read-only copy of an allowed module (writes are refused by `guarded_write`)."""


class Imports:
    """The `__import__` of one sandbox: allowed names only, answered with module copies."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)
        self._copies: dict[str, ModuleType] = {}

    def preload(self) -> None:
        """Import every allowed module now (workers do this before their limits apply)."""
        for name in sorted(self.allowed):
            self.module(name)

    def module(self, name: str) -> ModuleType:
        found = self._copies.get(name)
        if found is not None:
            return found
        if name in self.allowed:
            real = importlib.import_module(name)
            made = _ModuleCopy(name, real.__doc__)
            denied = DENIED.get(name, frozenset())
            for attr, value in vars(real).items():
                if attr.startswith("_") or attr in denied or isinstance(value, ModuleType):
                    continue
                # containers are copied so a trusted component cannot change the engine's
                setattr(
                    made, attr, copy.copy(value) if isinstance(value, dict | list | set) else value
                )
        else:  # a package only as the way to an allowed submodule (`import collections.abc`)
            made = _ModuleCopy(name)
        for sub in self.allowed:
            head, _, tail = sub.rpartition(".")
            if head == name:
                setattr(made, tail, self.module(sub))
        self._copies[name] = made
        return made

    def __call__(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> ModuleType:
        if level != 0:
            raise ImportError("relative imports are not allowed in components")
        if name not in self.allowed:
            raise ImportError(f"import of {name!r} is not allowed")
        if fromlist:
            return self.module(name)
        return self.module(name.partition(".")[0])


def restricted_globals(imports: Imports) -> dict[str, Any]:
    """A fresh global namespace for checked code."""
    names = dict(safe_builtins)
    for name in _REMOVED_BUILTINS:
        names.pop(name, None)
    for name in _EXTRA_BUILTINS:
        names[name] = getattr(builtins, name)
    names.update(
        __import__=imports,
        getattr=guarded_getattr,
        hasattr=guarded_hasattr,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
    )
    return {
        "__builtins__": names,
        "__name__": SANDBOX_MODULE,
        "__metaclass__": type,
        "_getattr_": guarded_getattr,
        "_getitem_": _getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_inplacevar_": _inplacevar,
        "_apply_": _apply,
        "_print_": PrintCollector,
    }


def plain_globals() -> dict[str, Any]:
    """Globals for unchecked code (`check: false`): the full language."""
    return {"__builtins__": builtins, "__name__": SANDBOX_MODULE}


@dataclass
class Hooks:
    """The callables a component defined (missing optional hooks are None)."""

    name: str
    execute: Callable[..., Any]
    init: Callable[..., Any] | None = None
    start: Callable[..., Any] | None = None
    stop: Callable[..., Any] | None = None


class ContractError(Exception):
    """The source ran but does not define what a component must (reported by the loader)."""


def load_hooks(code: CodeType, namespace: dict[str, Any], fallback_name: str) -> Hooks:
    """Run the component's top level in `namespace` and pick out its hooks."""
    exec(code, namespace)
    found: dict[str, Callable[..., Any] | None] = {}
    for hook in HOOKS:
        value = namespace.get(hook)
        if value is not None and not callable(value):
            raise ContractError(f"{hook!r} must be a function, not a {type(value).__name__}")
        found[hook] = value
    execute = found.pop("execute")
    if execute is None:
        raise ContractError("a component must define execute(ctx, data)")
    name = namespace.get("name", fallback_name)
    if not isinstance(name, str) or not name:
        raise ContractError("'name' must be a non-empty string")
    return Hooks(name=name, execute=execute, **found)


def run_to_end(result: Any) -> Any:
    """The value of `result`, driving it if it is awaitable and never suspends (workers).

    In a worker nothing is really asynchronous: `services.call` answers at once, so a
    coroutine that suspends awaited something a component cannot legitimately have.
    """
    if not inspect.isawaitable(result):
        return result
    steps = result.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    close = getattr(steps, "close", None)
    if close is not None:
        close()
    raise RuntimeError("a component may only await services.call(...) in a worker")


class Ready:
    """An awaitable that is already done (what `services.call` returns inside a worker)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[None, None, Any]:
        yield from ()  # a generator that returns at once
        return self.value


class ServicesView:
    """What `init(config, services)` receives: the names it may call, and `call` itself."""

    __slots__ = ("_call", "names")

    def __init__(self, names: Iterable[str], call: Callable[[str, Any], Awaitable[Any]]) -> None:
        self.names = tuple(sorted(names))
        self._call = call

    def has(self, name: str) -> bool:
        return name in self.names

    def call(self, name: str, data: Any = None) -> Awaitable[Any]:
        """Run service `name` (a handler or pipeline listed in `requires`); await the result."""
        if name not in self.names:
            known = ", ".join(self.names) or "none"
            raise LookupError(f"service {name!r} is not in this component's requires ({known})")
        return self._call(name, data)


def describe(exc: BaseException, origin: str) -> str:
    """`TypeError: ... (line 12)`: the error and the component line it came from."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == origin:
            line = tb.tb_lineno
        tb = tb.tb_next
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{text} (line {line})" if line is not None else text
