"""The static sandbox check: RestrictedPython's policy, extended for the known escape routes.

RestrictedPython already rejects names and attributes starting with `_` (so `__class__`,
`__subclasses__`, `__globals__`, `__builtins__`, `__code__`, `__import__`...), the frame,
traceback, generator and coroutine attributes (`gi_frame`, `f_globals`, `tb_frame`...),
`exec`/`eval`, `except*` and `match`, and rewrites attribute, item and iteration access into
guard calls (see `sandbox`). On top of that this policy:

- allows only imports on a list (exact module names; no relative imports);
- rejects the built-ins that reach outside (`open`, `compile`, `globals`, `vars`, `type`...)
  wherever they are named, not only when called;
- rejects `getattr`/`setattr`/`delattr`/`hasattr` unless the attribute is a literal that is
  itself allowed;
- rejects literal format strings that read attributes (`"{0.__class__}".format(x)`);
- allows `async def` and `await` (the contract allows async hooks), but not `async for/with`;
- drops annotations, so no string annotation can later be evaluated by `typing`.

Every problem carries its line and column; all are reported at once.
"""

from __future__ import annotations

import ast
import string
from collections.abc import Iterable
from types import CodeType

from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
)

from flownb.dynamic.contract import CheckError, Problem

# Built-ins a component may not name at all, with what to do instead.
FORBIDDEN_NAMES: dict[str, str] = {
    "open": "components cannot use files; pass data in and out instead",
    "compile": "components cannot compile code",
    "exec": "components cannot run code from strings",
    "eval": "components cannot run code from strings",
    "globals": "components cannot inspect namespaces",
    "locals": "components cannot inspect namespaces",
    "vars": "components cannot inspect namespaces",
    "dir": "components cannot inspect namespaces",
    "type": "use isinstance() instead of type()",
    "super": "super() is not available in components",
    "object": "the object class is not available in components",
    "memoryview": "memoryview is not available in components",
    "breakpoint": "the debugger is not available in components",
    "input": "components cannot read the terminal",
    "help": "help() is not available in components",
    "exit": "components cannot end the process",
    "quit": "components cannot end the process",
    "format": "the format() built-in is not available; use an f-string",
}

# Attributes refused on top of RestrictedPython's list (`mro` leads to `object`).
EXTRA_BLOCKED_ATTRIBUTES = frozenset({"mro", "f_trace_lines", "f_trace_opcodes"})
BLOCKED_ATTRIBUTES = INSPECT_ATTRIBUTES | EXTRA_BLOCKED_ATTRIBUTES

_NAME_FUNCTIONS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
_FORMAT_METHODS = frozenset({"format", "format_map"})
Visited = ast.AST | Iterable[ast.AST] | None  # what a NodeTransformer visit may return
_formatter = string.Formatter()
_AUG_OPERATORS: dict[type[ast.operator], str] = IOPERATOR_TO_STR


def attribute_problem(name: str) -> str | None:
    """Why attribute `name` may not be used by a component, or None if it may."""
    if name.startswith("_"):
        return f"attribute {name!r} is not allowed (names starting with '_' are private)"
    if name in BLOCKED_ATTRIBUTES:
        return f"attribute {name!r} is not allowed (it exposes interpreter internals)"
    return None


def format_problem(template: str) -> str | None:
    """Why a format string is unsafe (a field reading an attribute), or None."""
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as exc:
        return f"invalid format string: {exc}"
    for _, field_name, spec, _ in parsed:
        if field_name is None:
            continue
        if "." in field_name:
            return (
                f"format field {{{field_name}}} reads an attribute; "
                "format plain values (or use an f-string)"
            )
        if spec and "{" in spec:
            nested = format_problem(spec)
            if nested:
                return nested
    return None


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer plus flownb's rules; records problems with columns."""

    def __init__(self, imports: Iterable[str], bound: Iterable[str] = ()) -> None:
        super().__init__()
        self.imports = frozenset(imports)
        self.bound = frozenset(bound)  # names the source assigns itself (may shadow built-ins)
        self.problems: list[Problem] = []

    # RestrictedPython reports through `error`; keep the column too.
    def error(self, node: ast.AST, info: str) -> None:
        line = getattr(node, "lineno", 1) or 1
        col = (getattr(node, "col_offset", 0) or 0) + 1
        self.problems.append(Problem(line, col, info))
        self.errors.append(f"Line {line}: {info}")

    def visit_Name(self, node: ast.Name) -> Visited:
        reason = FORBIDDEN_NAMES.get(node.id)
        if reason is not None and node.id not in self.bound:
            self.error(node, f"{node.id!r} is not allowed: {reason}")
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> Visited:
        if node.attr in EXTRA_BLOCKED_ATTRIBUTES:
            self.error(node, f"attribute {node.attr!r} is not allowed")
        return super().visit_Attribute(node)

    def visit_Call(self, node: ast.Call) -> Visited:
        func = node.func
        if isinstance(func, ast.Name) and func.id in _NAME_FUNCTIONS:
            self._check_name_function(node, func.id)
        if isinstance(func, ast.Attribute) and func.attr in _FORMAT_METHODS:
            template: ast.expr | None = func.value
            if isinstance(template, ast.Name) and template.id == "str" and node.args:
                template = node.args[0]
            if isinstance(template, ast.Constant) and isinstance(template.value, str):
                reason = format_problem(template.value)
                if reason is not None:
                    self.error(template, reason)
        return super().visit_Call(node)

    def _check_name_function(self, node: ast.Call, fn: str) -> None:
        if len(node.args) < 2:
            self.error(node, f"{fn}() needs an object and a literal attribute name")
            return
        attr = node.args[1]
        if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
            self.error(
                attr,
                f"{fn}() with a computed attribute name is not allowed; "
                "write the attribute name as a literal string",
            )
            return
        reason = attribute_problem(attr.value)
        if reason is not None:
            self.error(attr, reason)

    def visit_Import(self, node: ast.Import) -> Visited:
        for alias in node.names:
            self._check_module(node, alias.name)
        return super().visit_Import(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Visited:
        if node.level:
            self.error(node, "relative imports are not allowed in components")
        elif node.module is not None:
            self._check_module(node, node.module)
        return super().visit_ImportFrom(node)

    def _check_module(self, node: ast.AST, module: str) -> None:
        if module not in self.imports:
            allowed = ", ".join(sorted(self.imports)) or "none"
            self.error(node, f"import of {module!r} is not allowed (allowed: {allowed})")

    def visit_AugAssign(self, node: ast.AugAssign) -> Visited:
        """`d[k] += v` and `o.a += v` (refused by RestrictedPython) through the guards.

        Becomes `t = d; k2 = k; _write_(t)[k2] = _inplacevar_('+=', _getitem_(t, k2), v)`,
        so the container and key are evaluated once, as in plain Python.
        """
        target = node.target
        if not isinstance(target, ast.Subscript | ast.Attribute):
            return super().visit_AugAssign(node)
        if isinstance(target, ast.Attribute):
            reason = attribute_problem(target.attr)
            if reason is not None:
                self.error(target, reason)
                return node
        op = _AUG_OPERATORS[type(node.op)]
        obj = self.gen_tmp_name()
        first: list[ast.stmt] = [_assign(obj, self.visit(target.value))]
        if isinstance(target, ast.Subscript):
            key = self.gen_tmp_name()
            first.append(_assign(key, self.visit(target.slice)))
            current: ast.expr = _call("_getitem_", _load(obj), _load(key))
            store: ast.expr = ast.Subscript(
                value=_call("_write_", _load(obj)), slice=_load(key), ctx=ast.Store()
            )
        else:
            current = _call("_getattr_", _load(obj), ast.Constant(target.attr))
            store = ast.Attribute(
                value=_call("_write_", _load(obj)), attr=target.attr, ctx=ast.Store()
            )
        value = _call("_inplacevar_", ast.Constant(op), current, self.visit(node.value))
        statements = [*first, ast.Assign(targets=[store], value=value)]
        for statement in statements:
            ast.copy_location(statement, node)
            ast.fix_missing_locations(statement)
        return statements

    # Annotations are never needed at run time and strings in them can be evaluated later.
    def visit_FunctionDef(self, node: ast.FunctionDef) -> Visited:
        _strip_annotations(node)
        return super().visit_FunctionDef(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> Visited:
        _strip_annotations(node)
        self.check_name(node, node.name, allow_magic_methods=True)
        self.check_function_argument_names(node)
        with self.print_info.new_print_scope():
            node = self.node_contents_visit(node)
            self.inject_print_collector(node)  # type: ignore[arg-type]
        return node

    def visit_Await(self, node: ast.Await) -> Visited:
        return self.node_contents_visit(node)


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value)


def _call(fn: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=_load(fn), args=list(args), keywords=[])


def _strip_annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    node.returns = None
    args = node.args
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            arg.annotation = None


def _bound_names(tree: ast.AST) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def check(text: str, origin: str = "<string>", imports: Iterable[str] = ()) -> CodeType:
    """Check `text` and compile it for the sandbox; raises `CheckError` with every problem."""
    try:
        tree = ast.parse(text, origin, "exec")
    except SyntaxError as exc:
        problem = Problem(exc.lineno or 1, exc.offset or 1, f"syntax error: {exc.msg}")
        raise CheckError(origin, [problem]) from None
    policy = SandboxPolicy(imports, _bound_names(tree))
    tree = policy.visit(tree)
    if policy.problems:
        problems = sorted(set(policy.problems), key=lambda p: (p.line, p.col, p.message))
        raise CheckError(origin, problems)
    ast.fix_missing_locations(tree)
    return compile(tree, origin, "exec")


def compile_unchecked(text: str, origin: str = "<string>") -> CodeType:
    """Plain compile, for components run with `check: false` (syntax errors still located)."""
    try:
        return compile(text, origin, "exec")
    except SyntaxError as exc:
        problem = Problem(exc.lineno or 1, exc.offset or 1, f"syntax error: {exc.msg}")
        raise CheckError(origin, [problem]) from None
