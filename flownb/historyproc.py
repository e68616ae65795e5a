"""The history's writer process: execution rows written to the database by another process.

A writer thread in the engine's process shares the engine's GIL: every time it comes back
from the database (or from the search for secrets) it must take the GIL from the engine's
thread, and on a virtual machine each such hand-over costs the engine far more than the
writer's own work (measured in BENCHMARKS.md). `SqlHistory(..., writer="process")` hands
its rows to a child process instead, in a few large writes to a pipe per flush; the child
(`python -m flownb.historyproc`) runs its own thread-writer `SqlHistory` on the same
database, which screens, batches and inserts them. Reads, audit events, dead letters and
retention stay with the parent's store.

The protocol, one line per message. Parent to child: first the settings (a JSON object,
so the URL's password is not on the command line), then batches of rows, and syncs as
`#<n>`. A batch is the JSON array of its rows' columns before `detail` (one line), then
each row's `detail` (JSON already), one line each; JSON text holds no raw newline. The
engine's thread only queues a row (as for the thread writer); the store's thread turns what
is queued into a batch, with one encoding of all its columns and one join (`encode`), and
writes it in one blocking write (one GIL hand-over per batch). Child to parent: JSON
objects `{"sync": n, "error": ..., "dropped": ...}` once every row sent before `#<n>` is
written (or failed to be), and `{"error": ..., "dropped": ...}` when either changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import orjson

from flownb.errors import FlownbError
from flownb.history import Row

if TYPE_CHECKING:
    from flownb.historydb import SqlHistory

log = logging.getLogger("flownb.history")

PIPE_SIZE = 1 << 20  # bytes the pipe holds (Linux' default limit for an unprivileged user)
CHILD_FLUSH_INTERVAL = 0.1  # seconds the child keeps rows before it writes them, at most


def encode(rows: list[Row]) -> bytes:
    """Rows as one batch of the protocol, newline-terminated: one encoding of every row's
    columns, one join in C."""
    heads = orjson.dumps([row[:-1] for row in rows])  # each row but its last column, `detail`
    return b"\n".join(chain((heads,), [row[-1] for row in rows], (b"",)))


@dataclass
class Status:
    """What the child last said of its database."""

    error: str | None = None
    dropped: int = 0


class WriterProcess:
    """The parent's end: starts the child on first use (again if it exits), sends rows,
    waits for syncs. Called from the `SqlHistory` thread only; its calls block that thread
    (not the engine's): a write until the pipe took the batch, a sync until the child
    answers."""

    def __init__(self, store: SqlHistory) -> None:
        self.store = store
        self.status = Status()
        self._proc: subprocess.Popen[bytes] | None = None
        self._said = b""  # an unfinished line from the child
        self._next_sync = 0

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _started(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            log.warning(
                "history writer process exited (status %s); rows it had not written are lost;"
                " starting a new one",
                proc.returncode,
            )
            self._end(proc)
        store = self.store
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flownb.historyproc"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # Ctrl+C in a terminal is the parent's to handle
            )
        except OSError as exc:  # rows stay queued (up to max_queue) and the engine runs on
            raise FlownbError(f"history writer process could not start: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(OSError, ImportError, AttributeError):
            import fcntl  # Linux: a larger pipe, fewer and larger writes, fewer GIL hand-overs

            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(proc.stdout.fileno(), False)
        url = store.url.url
        settings = {
            "url": url.set(drivername=url.get_backend_name()).render_as_string(hide_password=False),
            "prefix": store.prefix,
            "redact": list(store.redactor.words),
            "batch_size": store.batch_size,
            # the child writes what it gets soon: its GIL is nobody else's
            "flush_interval": min(store.flush_interval, CHILD_FLUSH_INTERVAL),
            "max_queue": store.max_queue,
        }
        self._proc = proc
        self._write(orjson.dumps(settings) + b"\n")
        return proc

    def _write(self, data: bytes) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        fd = proc.stdin.fileno()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:  # the child is gone (broken pipe)
            raise FlownbError(f"history writer process: {exc}") from exc

    def _hear(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """What the child said since last time (waiting up to `wait` s for something)."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return []
        fd = proc.stdout.fileno()
        if wait and not select.select([fd], [], [], wait)[0]:
            return []
        try:
            while chunk := os.read(fd, 1 << 16):
                self._said += chunk
        except BlockingIOError:
            pass
        *lines, self._said = self._said.split(b"\n")
        heard = []
        for line in lines:
            with contextlib.suppress(orjson.JSONDecodeError):
                said = orjson.loads(line)
                self.status = Status(said.get("error"), int(said.get("dropped", 0)))
                heard.append(said)
        return heard

    def send(self, rows: list[Row]) -> None:
        """Hand rows over (returns once the pipe took them, not once they are written)."""
        self._started()
        self._write(encode(rows))
        self._hear()

    def sync(self, timeout: float = 60.0) -> Status:
        """Wait until every row sent so far is written, or failed to be (`Status.error`)."""
        proc = self._started()
        self._next_sync += 1
        number = self._next_sync
        self._write(b"#%d\n" % number)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if any(said.get("sync") == number for said in self._hear(min(left, 0.5))):
                return self.status
            if proc.poll() is not None:
                raise FlownbError(f"history writer process exited (status {proc.returncode})")
        raise FlownbError(f"history writer process: no answer in {timeout:g}s")

    def close(self, timeout: float = 30.0) -> None:
        """End the child: it writes what it holds, then exits (killed after `timeout`)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._end(proc, timeout)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("history writer process did not end in %gs; killed", timeout)
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --- the child ---------------------------------------------------------------------------------
def main() -> None:
    """Write the rows read from stdin; sync and status lines on stdout; exit at end of input."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends it by closing its input
    logging.basicConfig(level=logging.WARNING, format="flownb history writer: %(message)s")
    fd = sys.stdin.fileno()
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        data += chunk
    first, _, data = data.partition(b"\n")
    child = _Child(orjson.loads(first))
    # A batch decodes into thousands of lists and tuples, which wait in the queue: collections
    # then skip the modules' objects (freeze) and come less often (half the time they took).
    gc.freeze()
    gc.set_threshold(10_000)
    child.serve(fd, data)


class _Child:
    """The child's side: a thread-writer store, fed from the pipe."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from flownb.historydb import SqlHistory

        self.store = SqlHistory(
            settings["url"],
            prefix=settings["prefix"],
            redact=settings["redact"],
            batch_size=settings["batch_size"],
            flush_interval=settings["flush_interval"],
            max_queue=settings["max_queue"],
        )
        self.said = Status()

    def say(self, sync: int | None = None) -> None:
        """Tell the parent of a sync, or of a change in the database's state."""
        store = self.store
        now = Status(store.last_error, store.dropped)
        if sync is None and now == self.said:
            return
        self.said = now
        message: dict[str, Any] = {"error": now.error, "dropped": now.dropped}
        if sync is not None:
            message["sync"] = sync
        sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
        sys.stdout.buffer.flush()

    def flush(self) -> None:
        try:
            asyncio.run(self.store.flush())
        except FlownbError as exc:
            self.store.last_error = str(exc)

    def serve(self, fd: int, data: bytes) -> None:
        store = self.store
        heads: list[Any] = []  # the columns of the rows whose `detail` lines come next
        taken = 0  # of `heads`
        try:
            while True:
                lines = data.split(b"\n")
                data = lines.pop()  # an unfinished line: wait for its end
                for line in lines:
                    if taken < len(heads):
                        store.add((*heads[taken], line))
                        taken += 1
                    elif line.startswith(b"#"):
                        self.flush()
                        self.say(int(line[1:]))
                    elif line:
                        heads, taken = orjson.loads(line), 0
                self.say()
                if _readable(fd, store.flush_interval):
                    chunk = os.read(fd, 1 << 22)
                    if not chunk:
                        break
                    data += chunk
        finally:
            store.close()


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


if __name__ == "__main__":
    main()
