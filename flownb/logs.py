"""Structured logs: every record carries the execution id and request id it was logged under.

`Engine.execute` sets the two context variables for the duration of an execution (asyncio
copies context into each task, so concurrent executions never see each other's ids);
`ContextFilter` copies them onto every log record as `execution_id` and `request_id`, and
`JsonFormatter` writes one JSON object per line (`flownb run --log-json`). Fields given as
`extra=` win over the context, and an `extra={"fields": {...}}` dict (the `log` step's) is
merged into the JSON object.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

import orjson

execution_id: ContextVar[str | None] = ContextVar("flownb_execution_id", default=None)
request_id: ContextVar[str | None] = ContextVar("flownb_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Adds `execution_id` and `request_id` from the context (unless the record has them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "execution_id", None) is None:
            record.execution_id = execution_id.get()
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "execution_id", "request_id", "fields", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, extra fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("execution_id", "request_id"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({str(k): v for k, v in fields.items() if str(k) not in out})
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["error"] = record.exc_text
        return orjson.dumps(out, default=str).decode()


def configure(level: int | str = logging.INFO, *, json: bool = False) -> None:
    """Set up the root logger on stderr: text (default) or JSON lines, ids on every record."""
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
