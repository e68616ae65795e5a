"""Sandbox escapes, one test per technique: each is blocked and the engine stays healthy.

Three layers are exercised: the static check (the source is refused before anything runs,
with line and column), the runtime guards (the source passes the check, the guard refuses
at run time), and the worker's OS limits (resource attacks; some run with `check: false` to
show the limits hold even for code that got past the sandbox).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flownb.dynamic.checker import check
from flownb.dynamic.contract import DEFAULT_IMPORTS, CheckError
from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.execution import ExecutionContext

# --- static check ------------------------------------------------------------------------
STATIC: list[tuple[str, str, str]] = [
    # class-hierarchy walks
    ("subclasses-walk", "x = ().__class__.__bases__[0].__subclasses__()", "__class__"),
    ("mro-walk", "x = str.mro()[1]", "'mro'"),
    ("dict-of-instance", "x = data.__dict__", "__dict__"),
    ("metaclass-keyword", "class X(dict, metaclass=data):\n    pass", "metaclass"),
    ("type-three-args", "X = type('X', (), {})", "'type' is not allowed"),
    ("object-class", "x = object", "'object' is not allowed"),
    # globals / builtins reach-through
    ("function-globals", "x = execute.__globals__", "__globals__"),
    ("builtins-name", "x = __builtins__", "__builtins__"),
    ("function-code", "x = execute.__code__", "__code__"),
    ("globals-call", "x = globals()", "'globals' is not allowed"),
    ("vars-call", "x = vars()", "'vars' is not allowed"),
    ("locals-call", "x = locals()", "'locals' is not allowed"),
    # frames via generators, coroutines and tracebacks
    ("generator-frame", "g = (i for i in [1])\nx = g.gi_frame.f_back", "gi_frame"),
    ("generator-code", "g = (i for i in [1])\nx = g.gi_code", "gi_code"),
    ("coroutine-frame", "async def f():\n    pass\nx = f().cr_frame", "cr_frame"),
    ("async-generator-frame", "async def f():\n    yield 1\nx = f().ag_frame", "ag_frame"),
    (
        "traceback-frame",
        "try:\n    1 / 0\nexcept Exception as e:\n    x = e.__traceback__.tb_frame",
        "__traceback__",
    ),
    ("frame-globals", "def f(tb):\n    return tb.tb_frame.f_globals", "tb_frame"),
    ("frame-back", "def f(frame):\n    return frame.f_back", "f_back"),
    # format-string attribute access
    ("format-literal", "x = '{0.__class__}'.format(data)", "reads an attribute"),
    ("format-map-literal", "x = '{a.__class__}'.format_map({'a': 1})", "reads an attribute"),
    ("format-unbound", "x = str.format('{0.__globals__}', execute)", "reads an attribute"),
    ("format-nested-spec", "x = '{0:{1.__class__}}'.format(1, data)", "reads an attribute"),
    ("format-builtin", "x = format(data, '')", "'format' is not allowed"),
    # computed getattr and friends
    ("getattr-computed", "x = getattr(data, '__cl' + 'ass__')", "computed attribute name"),
    ("getattr-dunder-literal", "x = getattr(data, '__class__')", "'__class__' is not allowed"),
    ("setattr-computed", "n = 'x'\nsetattr(data, n, 1)", "computed attribute name"),
    ("getattr-frame-literal", "x = getattr(data, 'gi_frame')", "'gi_frame' is not allowed"),
    # importlib / __import__ / sys.modules
    ("dunder-import", "os = __import__('os')", "__import__"),
    ("importlib", "import importlib", "import of 'importlib' is not allowed"),
    ("sys-modules", "import sys\nx = sys.modules['os']", "import of 'sys' is not allowed"),
    ("relative-import", "from . import secrets", "relative imports"),
    # os, directly and through other modules
    ("os-import", "import os", "import of 'os' is not allowed"),
    ("os-from-import", "from os import system", "import of 'os' is not allowed"),
    ("os-path-submodule", "import os.path", "import of 'os.path' is not allowed"),
    ("subprocess", "import subprocess", "import of 'subprocess' is not allowed"),
    ("json-tool-submodule", "import json.tool", "import of 'json.tool' is not allowed"),
    # serialisation and native code
    ("pickle", "import pickle", "import of 'pickle' is not allowed"),
    ("marshal", "import marshal", "import of 'marshal' is not allowed"),
    ("ctypes", "import ctypes", "import of 'ctypes' is not allowed"),
    # code from strings and other built-ins
    ("exec", "exec('import os')", "'exec' is not allowed"),
    ("eval", "x = eval('1')", "'eval' is not allowed"),
    ("eval-alias", "run = eval", "'eval' is not allowed"),
    ("compile", "x = compile('1', 'f', 'eval')", "'compile' is not allowed"),
    ("open", "x = open('/etc/passwd').read()", "'open' is not allowed"),
    ("breakpoint", "breakpoint()", "not allowed"),
    # grammar that bypasses the guards
    ("except-star", "try:\n    pass\nexcept* ValueError:\n    pass", "TryStar"),
    ("match-class-pattern", "match data:\n    case dict(x=y):\n        pass", "Match"),
]


@pytest.mark.parametrize(
    ("source", "expected"), [(s, e) for _, s, e in STATIC], ids=[i for i, _, _ in STATIC]
)
def test_static_check_refuses(source: str, expected: str) -> None:
    text = "def execute(ctx, data):\n    return {}\n" + source + "\n"
    with pytest.raises(CheckError) as caught:
        check(text, "attack.py", DEFAULT_IMPORTS)
    error = caught.value
    assert any(expected in p.message for p in error.problems), error.render()
    first = error.problems[0]
    assert first.line >= 3 and first.col >= 1  # pinned to the attack, not the header
    assert f"attack.py:{first.line}:{first.col}: " in error.render()


# --- runtime guards and OS limits, inside a running engine --------------------------------
GOOD = """
name = "good"
def execute(ctx, data):
    return {"ok": True, "got": data}
"""

ENGINE = """
modules:
  - name: bad
    type: dynamic.component
    config:
      path: bad.py
      cpuSeconds: {cpu}
      timeout: {timeout}
      memoryMb: {memory}
      maxOpenFiles: {files}
      check: {check}
  - name: good
    type: dynamic.component
    config: {{path: good.py, trusted: true}}
pipelines:
  ping:
    - type: set
      values: {{pong: true}}
"""


def attack_source(body: str) -> str:
    """A component that attacks when `data.attack` is set and answers normally otherwise."""
    return (
        "def run_attack(data):\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n\ndef execute(ctx, data):\n"
        "    if data.get('attack'):\n"
        "        return run_attack(data)\n"
        "    return {'ok': True}\n"
    )


class Harness:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def call(self, module: str, data: Any) -> Any:
        handler = self.engine.handler(module)
        ctx = ExecutionContext(self.engine, "test", module, data)
        return await handler.handle(ctx, data)

    async def attack(self, match: str) -> FlownbError:
        with pytest.raises(FlownbError, match=match) as caught:
            await self.call("bad", {"attack": True})
        await self.assert_healthy()
        return caught.value

    async def assert_healthy(self) -> None:
        """The attacker's worker was replaced, the other component and pipelines still run."""
        assert await self.call("bad", {}) == {"ok": True}
        assert await self.call("good", {"n": 1}) == {"ok": True, "got": {"n": 1}}
        reply = await self.engine.trigger_workflow("pipeline", "ping", {"a": 1})
        assert reply == {"a": 1}
        assert self.engine.state == "running"


@pytest.fixture
async def harness_for(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    engines: list[Engine] = []

    async def make(
        body: str,
        *,
        cpu: float = 2,
        timeout: float = 5,
        memory: int = 256,
        files: int = 0,
        checked: bool = True,
    ) -> Harness:
        (tmp_path / "bad.py").write_text(attack_source(body))
        (tmp_path / "good.py").write_text(GOOD)
        flow = tmp_path / "flow.yaml"
        flow.write_text(
            ENGINE.format(
                cpu=cpu, timeout=timeout, memory=memory, files=files, check=str(checked).lower()
            )
        )
        engine = Engine.from_file(flow)
        engines.append(engine)
        await engine.start()
        return Harness(engine)

    yield make
    for engine in engines:
        await engine.stop()


# runtime guards: these pass the static check and are refused while running
async def test_format_string_built_at_run_time(harness_for: Any) -> None:
    h = await harness_for("template = '{0.__cl' + 'ass__}'\nreturn {'x': template.format(data)}")
    await h.attack("reads an attribute")


async def test_format_map_built_at_run_time(harness_for: Any) -> None:
    h = await harness_for(
        "template = '{d.__glo' + 'bals__}'\nreturn {'x': template.format_map({'d': run_attack})}"
    )
    await h.attack("reads an attribute")


async def test_os_via_typing_module_attribute(harness_for: Any) -> None:
    h = await harness_for("import typing\nreturn {'x': str(typing.sys.modules['os'])}")
    await h.attack("has no attribute 'sys'")


async def test_builtins_via_dataclasses_module_attribute(harness_for: Any) -> None:
    h = await harness_for("import dataclasses\nreturn {'x': str(dataclasses.builtins.open)}")
    await h.attack("has no attribute 'builtins'")


async def test_submodule_not_on_the_list(harness_for: Any) -> None:
    h = await harness_for("import json\nreturn {'x': str(json.decoder)}")
    await h.attack("has no attribute 'decoder'")


async def test_type_hints_evaluate_strings(harness_for: Any) -> None:
    h = await harness_for(
        "import typing\n"
        "X = typing.NamedTuple('X', [('a', '().__class__')])\n"
        "return {'x': str(typing.get_type_hints(X))}"
    )
    await h.attack("has no attribute 'get_type_hints'")


async def test_singledispatch_evaluates_annotations(harness_for: Any) -> None:
    h = await harness_for("import functools\nreturn {'x': str(functools.singledispatch)}")
    await h.attack("has no attribute 'singledispatch'")


async def test_string_formatter(harness_for: Any) -> None:
    h = await harness_for(
        "import string\nreturn {'x': string.Formatter().get_field('0.__class__', [1], {})}"
    )
    await h.attack("has no attribute 'Formatter'")


async def test_getattr_passed_as_a_value(harness_for: Any) -> None:
    # the static check sees no getattr call; the guard behind the name still refuses
    h = await harness_for(
        "import functools\n"
        "cls = functools.reduce(getattr, ['__class__', '__base__'], data)\n"
        "return {'x': str(cls)}"
    )
    await h.attack("private")


async def test_class_attribute_tampering(harness_for: Any) -> None:
    h = await harness_for("import json\njson.JSONEncoder.item_separator = ';'\nreturn {}")
    await h.attack("cannot change a type")


async def test_module_tampering(harness_for: Any) -> None:
    h = await harness_for("import json\njson.loads = len\nreturn {}")
    await h.attack("cannot change a")


async def test_guarded_getattr_on_module_valued_attribute(harness_for: Any) -> None:
    h = await harness_for(
        "import collections\nreturn {'x': str(getattr(collections, 'abc').Mapping)}"
    )
    # an allowed submodule is reachable (it is a filtered copy); a real module never is
    assert await h.call("bad", {"attack": True}) == {"x": "<class 'collections.abc.Mapping'>"}
    h2 = await harness_for("import random\nreturn {'x': str(getattr(random, 'os'))}")
    await h2.attack("has no attribute 'os'")


# resource attacks: the worker's OS limits
async def test_infinite_loop_hits_cpu_limit(harness_for: Any) -> None:
    h = await harness_for("while True:\n    pass", cpu=0.3)
    await h.attack("exceeded the CPU time limit of 0.3 s")


async def test_busy_call_hits_wall_time_limit(harness_for: Any) -> None:
    h = await harness_for("while True:\n    pass", cpu=30, timeout=0.3)
    await h.attack("exceeded the wall-time limit of 0.3 s")


async def test_memory_bomb(harness_for: Any) -> None:
    h = await harness_for("x = 'a' * (10 ** 10)\nreturn {}", memory=128)
    await h.attack("memory limit of 128 MB")


async def test_memory_growth(harness_for: Any) -> None:
    h = await harness_for("x = []\nwhile True:\n    x.append([0] * 10000)", memory=128)
    await h.attack("memory limit of 128 MB")


async def test_deep_recursion(harness_for: Any) -> None:
    h = await harness_for("def down(n):\n    return down(n + 1)\nreturn down(0)")
    await h.attack("recursion limit")


async def test_enormous_output(harness_for: Any) -> None:
    h = await harness_for("return {'x': 'a' * 5_000_000}")
    await h.attack("exceeds the limit of 1,000,000 bytes")


async def test_output_that_is_not_json(harness_for: Any) -> None:
    h = await harness_for("return {'x': {1, 2}}")
    await h.attack("not JSON")


async def test_fork_bomb_even_unchecked(harness_for: Any) -> None:
    h = await harness_for("import os\nwhile True:\n    os.fork()", checked=False)
    await h.attack("cannot create processes")


async def test_subprocess_even_unchecked(harness_for: Any) -> None:
    h = await harness_for(
        "import subprocess\nreturn {'x': subprocess.run(['true']).returncode}", checked=False
    )
    # no process can start (and the pipes it needs count against the open-files limit)
    await h.attack("cannot create processes|open-files limit")


async def test_fd_exhaustion_even_unchecked(harness_for: Any) -> None:
    h = await harness_for(
        "files = []\nwhile True:\n    files.append(open('/dev/null'))", checked=False, files=4
    )
    await h.attack("open-files limit of 4")


async def test_file_write_even_unchecked(harness_for: Any, tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    h = await harness_for(f"open({str(target)!r}, 'w').write('x')\nreturn {{}}", checked=False)
    await h.attack("open-files limit of 0")
    assert not target.exists()


async def test_socket_even_unchecked(harness_for: Any) -> None:
    h = await harness_for("import socket\nsocket.socket()\nreturn {}", checked=False)
    await h.attack("open-files limit of 0")


async def test_secrets_in_environment_not_visible(
    harness_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWNB_TEST_SECRET", "s3cret")
    h = await harness_for("import os\nreturn {'env': dict(os.environ)}", checked=False)
    result = await h.call("bad", {"attack": True})
    assert "FLOWNB_TEST_SECRET" not in result["env"]
    await h.assert_healthy()


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop applies when run as root")
async def test_worker_drops_root(harness_for: Any) -> None:
    h = await harness_for("import os\nreturn {'uid': os.getuid()}", checked=False)
    assert (await h.call("bad", {"attack": True}))["uid"] != 0
    await h.assert_healthy()
