"""Built-in module families, one file each; `BUILTIN_TYPES` is what the default registry holds."""

from __future__ import annotations

from flownb.modules import (
    api,
    cache,
    dynamic,
    eventbus,
    events,
    http,
    jsonschema,
    messaging,
    middleware,
    scheduler,
    statemachine,
    transformer,
)
from flownb.registry import ModuleType

BUILTIN_TYPES: tuple[ModuleType, ...] = (
    *http.TYPES,
    *api.TYPES,
    *middleware.TYPES,
    *messaging.TYPES,
    *statemachine.TYPES,
    *events.TYPES,
    *scheduler.TYPES,
    *eventbus.TYPES,
    *cache.TYPES,
    *jsonschema.TYPES,
    *transformer.TYPES,
    *dynamic.TYPES,
)
