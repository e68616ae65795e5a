"""`flownb history [--workflow W] [--status S] [--limit N] [--json] [--db URL] [--data-dir DIR]`.

Reads the history database `flownb run` writes (`--db URL`, else `$FLOWNB_HISTORY_DB`, else
`.flownb/history.db` in the data directory), newest first: one line per execution, or the
records with their steps as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flownb.errors import FlownbError

if TYPE_CHECKING:
    from flownb.history import ExecutionRecord


def _line(record: ExecutionRecord) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started))
    error = f"  {record.error}" if record.error else ""
    request = f"  request {record.request_id}" if record.request_id else ""
    return (
        f"{started}  {record.status:<5}  {record.duration_ms:9.2f} ms  {record.workflow}: "
        f"{record.action}  [{record.id}]{request}{error}"
    )


def history_command(
    *,
    workflow: str | None = None,
    status: str | None = None,
    limit: int = 20,
    as_json: bool = False,
    db: str | None = None,
    data_dir: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    from flownb.datadir import history_url
    from flownb.historydb import SqlHistory

    url = db or history_url(data_dir, create=False)
    if db is None and url.startswith("sqlite:///"):
        file = Path(url.removeprefix("sqlite:///"))
        if not file.exists():
            raise FlownbError(
                f"no history at {file}: run a workflow with `flownb run` here first, or point "
                "to one with --data-dir or --db"
            )

    async def read() -> list[ExecutionRecord]:
        store = SqlHistory(url)
        try:
            return await store.query(limit=limit, status=status, workflow=workflow)
        finally:
            await store.aclose()

    records = asyncio.run(read())
    if as_json:
        print(json.dumps([r.to_dict() for r in records], indent=2), file=out)
        return 0
    if not records:
        print(
            "no executions recorded" + (" matching the filters" if workflow or status else ""),
            file=out,
        )
        return 0
    for record in records:
        print(_line(record), file=out)
    return 0
