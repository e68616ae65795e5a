"""The worker process: runs one component under OS limits, serving calls over a pipe.

Started by `pool` as `python -c BOOTSTRAP`, which imports this file without the engine. The
parent sends length-prefixed orjson frames on the worker's stdin and reads replies on its
stdout. The first frame (`load`) carries the source and limits; the worker then imports the
allowed modules, compiles the source (checked again: defence in depth), and locks itself
down before running any component code:

- RLIMIT_AS (memory), RLIMIT_NOFILE (no new files beyond `max_open_files`), RLIMIT_FSIZE 0
  (no file writes), RLIMIT_CORE 0, RLIMIT_CPU (a lifetime budget; the worker asks to be
  retired before it runs out), and, after dropping root to `nobody`, RLIMIT_NPROC 0 (no
  processes; the kernel ignores it for root, hence the drop);
- per call, an ITIMER_PROF timer of `cpu_seconds`: its SIGPROF keeps the default action, so
  the kernel ends the process and no component code can catch it;
- an empty environment and `/` as working directory.

Wall time and oversized frames are enforced by the parent, which kills the process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import orjson

from flownb.dynamic.checker import check, compile_unchecked
from flownb.dynamic.contract import CheckError, DataError, call_context, check_result
from flownb.dynamic.sandbox import (
    ContractError,
    Hooks,
    Imports,
    Ready,
    ServicesView,
    describe,
    load_hooks,
    plain_globals,
    restricted_globals,
    run_to_end,
)

_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_STRICT |= orjson.OPT_PASSTHROUGH_SUBCLASS
_MB = 1024 * 1024
# Modules the standard library imports lazily from allowed ones; loaded before the lockdown.
_LAZY = ("_strptime", "encodings.idna", "unicodedata")


class Limit(Exception):
    """A limit was hit inside the worker; the parent replaces this worker."""


class Channel:
    """Length-prefixed frames over the two pipe ends."""

    def __init__(self, inp: IO[bytes], out: int) -> None:
        self.inp, self.out = inp, out

    def read(self) -> dict[str, Any] | None:
        head = self.inp.read(4)
        if len(head) < 4:
            return None
        body = self.inp.read(int.from_bytes(head, "big"))
        result: dict[str, Any] = orjson.loads(body)
        return result

    def write(self, body: bytes) -> None:
        view = memoryview(len(body).to_bytes(4, "big") + body)
        while view:
            view = view[os.write(self.out, view) :]


class Worker:
    def __init__(self, channel: Channel, load: dict[str, Any]) -> None:
        self.channel = channel
        self.origin: str = load["origin"]
        self.name: str = load["name"]
        limits: dict[str, Any] = load["limits"]
        self.cpu_seconds = float(limits["cpu_seconds"])
        self.memory_mb = int(limits["memory_mb"])
        self.max_output = int(limits["max_output_bytes"])
        self.max_files = int(limits["max_open_files"])
        self.cpu_budget = max(60, int(self.cpu_seconds * 30))
        self.checked = bool(load["check"])
        self.imports = Imports(load["imports"])
        self.hooks: Hooks | None = None
        self.services = ServicesView(load.get("services", ()), self._service)

    # --- setup ------------------------------------------------------------------------
    def prepare(self, text: str) -> Any:
        self.imports.preload()
        for name in _LAZY:
            with contextlib.suppress(ImportError):  # optional parts of the stdlib
                __import__(name)
        if self.checked:
            return check(text, self.origin, self.imports.allowed)
        return compile_unchecked(text, self.origin)

    def lock_down(self) -> None:
        nobody = None
        if os.geteuid() == 0:
            import pwd

            try:
                nobody = pwd.getpwnam("nobody")
            except KeyError:  # pragma: no cover - every Linux has nobody
                nobody = None
        files = _highest_open_fd() + 1 + self.max_files
        memory = self.memory_mb * _MB
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_budget, self.cpu_budget))
        if nobody is not None:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; a file write ends us

    # --- running component code -------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a hook under the CPU timer; map resource failures to `Limit`."""
        signal.setitimer(signal.ITIMER_PROF, self.cpu_seconds)
        try:
            return run_to_end(fn(*args))
        except MemoryError:
            raise Limit(f"exceeded the memory limit of {self.memory_mb} MB") from None
        except RecursionError:
            raise Limit(
                f"exceeded the recursion limit ({sys.getrecursionlimit()} nested calls)"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise Limit(f"exceeded the open-files limit of {self.max_files}") from None
            if exc.errno == errno.EAGAIN:
                raise Limit(
                    "tried to start a process; components cannot create processes"
                ) from None
            raise
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)

    def _service(self, name: str, data: Any) -> Ready:
        """`services.call` inside the worker: ask the parent, wait for its answer."""
        try:
            body = orjson.dumps({"op": "service", "name": name, "data": data}, option=_STRICT)
        except TypeError:
            raise TypeError(f"data for service {name!r} must be JSON values only") from None
        self.channel.write(body)
        reply = self.channel.read()
        if reply is None:
            raise SystemExit(0)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("error")))
        return Ready(reply.get("result"))

    def reply_ok(self, result_body: bytes = b"null") -> None:
        retire = time.process_time() + self.cpu_seconds + 1 >= self.cpu_budget
        head = b'{"ok":true,"retire":true,"result":' if retire else b'{"ok":true,"result":'
        self.channel.write(head + result_body + b"}")

    def reply_error(self, kind: str, message: str) -> None:
        self.channel.write(orjson.dumps({"ok": False, "kind": kind, "error": message}))

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        hooks = self.hooks
        assert hooks is not None
        if op == "call":
            ctx = message.get("ctx") or call_context(hooks.name)
            result = self.run(hooks.execute, ctx, message.get("data"))
            check_result(result, hooks.name)
            try:
                body = orjson.dumps(result, option=_STRICT)
            except TypeError:
                self.reply_error("data", "execute() returned values that are not JSON")
                return
            if len(body) > self.max_output:
                raise Limit(
                    f"output of {len(body):,} bytes exceeds the limit of {self.max_output:,} bytes"
                )
            self.reply_ok(body)
            return
        if op == "init":
            if hooks.init is not None:
                self.run(hooks.init, message.get("config") or {}, self.services)
        elif op == "start":
            if hooks.start is not None:
                self.run(hooks.start)
        elif op == "stop":
            if hooks.stop is not None:
                self.run(hooks.stop)
        else:
            self.reply_error("error", f"unknown operation {op!r}")
            return
        self.reply_ok()

    def serve(self) -> None:
        while True:
            message = self.channel.read()
            if message is None or message.get("op") == "exit":
                return
            try:
                self.handle(message)
            except Limit as exc:
                self.reply_error("limit", str(exc))
                return
            except DataError as exc:
                self.reply_error("data", exc.reason)
            except Exception as exc:
                self.reply_error("error", describe(exc, self.origin))


def _highest_open_fd() -> int:
    """The highest descriptor open now (not counting the one used to list them)."""
    try:
        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:  # pragma: no cover - no /proc
        return 4
    highest = 2
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:
            continue
        highest = max(highest, fd)
    return highest


def main() -> None:
    inp = open(os.dup(0), "rb")  # noqa: SIM115 - lives as long as the process
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints from unchecked code go to stderr, never into the frames
    os.close(null)
    channel = Channel(inp, out)
    load = channel.read()
    if load is None or load.get("op") != "load":
        return
    worker = Worker(channel, load)
    try:
        code = worker.prepare(load["text"])
    except CheckError as exc:
        worker.reply_error("error", "; ".join(exc.lines()))
        return
    worker.lock_down()
    namespace = restricted_globals(worker.imports) if worker.checked else plain_globals()
    try:
        worker.hooks = worker.run(load_hooks, code, namespace, worker.name)
    except Limit as exc:
        worker.reply_error("limit", str(exc))
        return
    except ContractError as exc:
        worker.reply_error("error", str(exc))
        return
    except Exception as exc:
        worker.reply_error("error", describe(exc, worker.origin))
        return
    worker.channel.write(orjson.dumps({"ok": True, "result": {"name": worker.hooks.name}}))
    worker.serve()
