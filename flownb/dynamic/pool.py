"""Isolated worker processes for one component version: spawn, talk, limit, replace.

Each worker (see `worker`) holds its own copy of the component, brought to the pool's phase
(loaded, initialised, started) before it takes calls. A call takes an idle worker, sends one
frame and waits for the reply under the wall-time limit; meanwhile the worker may ask for
`services.call`s, which are answered here. A limit violation (CPU, memory, wall time, output,
files, processes) or a dead worker fails that call with the reason, kills the process and
starts a replacement in the background; other calls and the engine go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from flownb.dynamic.contract import (
    ComponentError,
    DataError,
    LimitExceeded,
    Options,
    Source,
    encode,
)
from flownb.dynamic.runtime import Drain, ServiceCall

log = logging.getLogger("flownb.dynamic")

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
# Import the worker without running flownb/__init__.py (which loads the whole engine).
BOOTSTRAP = (
    "import sys, types\n"
    "pkg = types.ModuleType('flownb')\n"
    f"pkg.__path__ = [{_PACKAGE_DIR!r}]\n"
    "sys.modules['flownb'] = pkg\n"
    "from flownb.dynamic.worker import main\n"
    "main()\n"
)
_FRAME_SLACK = 64 * 1024  # room for the reply's envelope around the output


class WorkerDied(Exception):
    """The worker's pipe closed before it answered."""


class FrameProtocol(asyncio.Protocol):
    """Reads length-prefixed frames from the worker's stdout; refuses oversized ones."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.buffer = bytearray()
        self.frames: deque[bytes] = deque()
        self.closed = False
        self.oversized = 0
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if size > self.max_frame:
                self.oversized = size
                buf.clear()
                break
            if len(buf) < 4 + size:
                break
            self.frames.append(bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_frame(self) -> bytes:
        while not self.frames:
            if self.closed or self.oversized:
                raise WorkerDied
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.frames.popleft()


def _worker_env() -> dict[str, str]:
    """No secrets from the parent's environment; just enough to find the same packages."""
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)),
    }


class WorkerProcess:
    """One worker: its process, its pipes, and request/reply with service callbacks."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        reader: asyncio.ReadTransport,
        protocol: FrameProtocol,
        writer: asyncio.WriteTransport,
    ) -> None:
        self.proc, self.reader, self.protocol, self.writer = proc, reader, protocol, writer

    @classmethod
    async def spawn(cls, max_frame: int) -> WorkerProcess:
        # Popen returns once the child is forked (milliseconds, at pool start only); asyncio's
        # own subprocess transports cannot be closed explicitly and warn when collected.
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_env(),
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        loop = asyncio.get_running_loop()
        protocol = FrameProtocol(max_frame)
        reader: asyncio.ReadTransport | None = None
        try:
            reader, _ = await loop.connect_read_pipe(lambda: protocol, proc.stdout)
            writer, _ = await loop.connect_write_pipe(asyncio.Protocol, proc.stdin)
        except BaseException:  # cancelled while wiring up: leave no process or pipe behind
            proc.kill()
            if reader is not None:
                reader.close()
            else:
                proc.stdout.close()
            proc.stdin.close()
            proc.wait()
            raise
        return cls(proc, reader, protocol, writer)

    def send(self, body: bytes) -> None:
        if self.writer.is_closing():
            raise WorkerDied
        self.writer.write(len(body).to_bytes(4, "big") + body)

    async def request(
        self,
        body: bytes,
        timeout: float,
        on_service: Callable[[dict[str, Any]], Awaitable[bytes]] | None = None,
    ) -> dict[str, Any]:
        """Send one frame; answer service calls until the reply comes (or the time is up)."""
        self.send(body)
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = orjson.loads(await self.protocol.next_frame())
                if message.get("op") != "service":
                    return message
                if on_service is None:
                    reply = orjson.dumps({"ok": False, "error": "no services here"})
                else:
                    reply = await on_service(message)
                self.send(reply)

    async def exit_status(self) -> int:
        """Wait for the process to end (without blocking the loop) and return its status."""
        if self.proc.returncode is None:
            loop = asyncio.get_running_loop()
            try:
                fd = os.pidfd_open(self.proc.pid)
            except (AttributeError, OSError):  # pragma: no cover - old kernels
                await asyncio.to_thread(self.proc.wait)
            else:
                try:
                    if self.proc.poll() is None:
                        done: asyncio.Future[None] = loop.create_future()

                        def exited() -> None:
                            if not done.done():
                                done.set_result(None)

                        loop.add_reader(fd, exited)
                        try:
                            await done
                        finally:
                            loop.remove_reader(fd)
                finally:
                    os.close(fd)
            self.proc.wait()
        return self.proc.returncode

    async def kill(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        return await self.close()

    async def close(self) -> int:
        """Close the pipes and reap the process (it exits when its stdin closes)."""
        self.writer.close()
        status = await self.exit_status()
        self.reader.close()
        return status


def death_error(component: str, status: int, options: Options) -> ComponentError:
    """Why a worker ended, in the user's terms (a limit, when a signal says so)."""
    limits = options.limits
    if status >= 0:
        return ComponentError(component, f"its worker process exited with status {status}")
    sig = -status
    if sig in (signal.SIGPROF, signal.SIGXCPU):
        reason = f"exceeded the CPU time limit of {limits.cpu_seconds:g} s"
    elif sig == signal.SIGXFSZ:
        reason = "tried to write a file; components cannot write files"
    elif sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        reason = (
            f"its worker ended with {signal.Signals(sig).name} "
            f"(most likely over the memory limit of {limits.memory_mb} MB)"
        )
    else:
        return ComponentError(component, f"its worker was ended by {signal.Signals(sig).name}")
    return LimitExceeded(component, reason)


class WorkerPool(Drain):
    """The isolated runtime: `pool_size` workers running one version of one component."""

    def __init__(
        self,
        source: Source,
        options: Options,
        services: ServiceCall | None = None,
        requires: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.source, self.options = source, options
        self.name = source.name
        self._services, self._requires = services, tuple(requires)
        limits = options.limits
        self._timeout = limits.timeout
        self._max_frame = limits.max_output_bytes + _FRAME_SLACK
        self._load = orjson.dumps(
            {
                "op": "load",
                "name": source.name,
                "origin": source.origin,
                "text": source.text,
                "check": options.check,
                "imports": list(options.imports),
                "limits": limits.to_dict(),
                "services": list(requires),
            }
        )
        self._phases: list[bytes] = []  # what a new worker must replay after loading
        self._workers: set[WorkerProcess] = set()
        self._free: deque[WorkerProcess] = deque()
        self._waiters: deque[asyncio.Future[WorkerProcess]] = deque()
        self._spawning: set[asyncio.Task[None]] = set()
        self._broken: str | None = None
        self._closed = False

    # --- bringing workers up ------------------------------------------------------------
    async def _bring_up(self) -> WorkerProcess:
        worker = await WorkerProcess.spawn(self._max_frame)
        self._workers.add(worker)
        try:
            reply = await self._ask(worker, self._load, None)
            self.name = str(reply["result"]["name"]) if reply.get("ok") else self.name
            self._raise_for(worker, reply)
            for phase in self._phases:
                self._raise_for(worker, await self._ask(worker, phase, None))
        except BaseException:
            await self._discard(worker, replace=False)
            raise
        return worker

    async def _ask(self, worker: WorkerProcess, body: bytes, parent: Any) -> dict[str, Any]:
        """One request; a dead or overdue worker becomes a `LimitExceeded`/`ComponentError`."""
        try:
            return await worker.request(body, self._timeout, self._service_handler(parent))
        except TimeoutError:
            await worker.kill()
            raise LimitExceeded(
                self.name, f"exceeded the wall-time limit of {self._timeout:g} s", status=504
            ) from None
        except WorkerDied:
            oversized = worker.protocol.oversized
            status = await worker.kill()
            if oversized:
                limit = self.options.limits.max_output_bytes
                raise LimitExceeded(
                    self.name, f"output of {oversized:,} bytes exceeds the limit of {limit:,} bytes"
                ) from None
            raise death_error(self.name, status, self.options) from None

    def _raise_for(self, worker: WorkerProcess, reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            return
        kind, message = reply.get("kind"), str(reply.get("error"))
        if kind == "limit":
            raise LimitExceeded(self.name, message)
        if kind == "data":
            raise DataError(self.name, message)
        raise ComponentError(self.name, message)

    def _service_handler(self, parent: Any) -> Callable[[dict[str, Any]], Awaitable[bytes]]:
        async def answer(message: dict[str, Any]) -> bytes:
            name = str(message.get("name"))
            try:
                if self._services is None or name not in self._requires:
                    known = ", ".join(self._requires) or "none"
                    raise LookupError(f"service {name!r} is not in requires ({known})")
                result = await self._services(name, message.get("data"), parent)
                return b'{"ok":true,"result":' + encode(result, self.name, "service result") + b"}"
            except Exception as exc:
                return orjson.dumps({"ok": False, "error": str(exc)})

        return answer

    async def open(self) -> None:
        """Start `pool_size` workers; each loads the source and runs `init(config)`."""
        config = encode(dict(self.options.config), self.name, "config")
        self._phases = [b'{"op":"init","config":' + config + b"}"]
        size = max(1, self.options.pool_size)
        results = await asyncio.gather(
            *(self._bring_up() for _ in range(size)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for result in results:
            if isinstance(result, WorkerProcess):
                self._free.append(result)
        if failures:
            await self.close(0)
            raise failures[0]

    async def _each(self, body: bytes) -> None:
        for worker in list(self._free):
            self._raise_for(worker, await self._ask(worker, body, None))

    async def start(self) -> None:
        self._phases.append(b'{"op":"start"}')
        await self._each(b'{"op":"start"}')

    async def stop(self) -> None:
        self._phases = [p for p in self._phases if p != b'{"op":"start"}']
        await self._each(b'{"op":"stop"}')

    # --- calls -------------------------------------------------------------------------
    async def _acquire(self) -> WorkerProcess:
        while True:
            if self._free:
                return self._free.popleft()
            if self._closed:
                raise ComponentError(self.name, "is stopped")
            if self._broken is not None and not self._spawning:
                raise ComponentError(self.name, self._broken)
            waiter: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                return await waiter
            except _Retry:
                continue

    def _release(self, worker: WorkerProcess) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._free.append(worker)

    async def execute(self, ctx: dict[str, Any], data: Any, parent: Any = None) -> Any:
        body = (
            b'{"op":"call","ctx":'
            + orjson.dumps(ctx)
            + b',"data":'
            + encode(data, self.name, "input")
            + b"}"
        )
        self._enter()
        try:
            worker = await self._acquire()
            try:
                reply = await self._ask(worker, body, parent)
            except BaseException:
                await self._discard(worker)
                raise
            if reply.get("kind") == "limit" or reply.get("retire"):
                await self._discard(worker)
            else:
                self._release(worker)
            self._raise_for(worker, reply)
            return reply["result"]
        finally:
            self._leave()

    # --- replacing and closing ---------------------------------------------------------
    async def _discard(self, worker: WorkerProcess, replace: bool = True) -> None:
        if worker not in self._workers:
            return
        self._workers.discard(worker)
        await worker.kill()
        if replace and not self._closed:
            task = asyncio.create_task(self._replace())
            self._spawning.add(task)
            task.add_done_callback(self._spawning.discard)

    async def _replace(self) -> None:
        try:
            worker = await self._bring_up()
        except Exception as exc:
            self._broken = f"cannot restart its worker: {exc}"
            log.error("component %r: %s", self.name, self._broken)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(_Retry())
            self._waiters.clear()
            return
        if self._closed:
            await worker.close()
            return
        self._broken = None
        self._release(worker)

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Let calls in flight finish (up to `drain_timeout`), then end every worker."""
        await self.wait_idle(drain_timeout)
        self._closed = True
        for task in list(self._spawning):
            task.cancel()
        for task in list(self._spawning):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(_Retry())
        self._waiters.clear()
        workers, self._workers = list(self._workers), set()
        self._free.clear()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.send(b'{"op":"exit"}')
        await asyncio.gather(*(self._finish(w) for w in workers))

    async def _finish(self, worker: WorkerProcess) -> None:
        try:
            async with asyncio.timeout(2):
                await worker.close()
        except TimeoutError:
            await worker.kill()


class _Retry(Exception):
    """Wakes a caller waiting for a worker so it re-checks the pool's state."""
