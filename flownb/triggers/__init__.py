"""Trigger kinds: `triggers.<kind>` sections. Runtime classes are imported on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flownb.triggers.base import Trigger

_RUNTIME: dict[str, str] = {
    "http": "flownb.triggers.http:HttpTrigger",
    "schedule": "flownb.triggers.schedule:ScheduleTrigger",
    "event": "flownb.triggers.event:EventTrigger",
}
TRIGGER_KINDS: tuple[str, ...] = tuple(_RUNTIME)


def trigger_type(kind: str) -> type[Trigger[Any]]:
    module, _, attr = _RUNTIME[kind].partition(":")
    cls: type[Trigger[Any]] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = ["TRIGGER_KINDS", "trigger_type"]
