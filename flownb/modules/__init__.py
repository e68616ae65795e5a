"""Built-in module families, one file each; `BUILTIN_TYPES` is what the default registry holds."""

from __future__ import annotations

from flownb.modules import (
    api,
    cache,
    database,
    dynamic,
    eventbus,
    events,
    http,
    httpclient,
    jsonschema,
    messaging,
    middleware,
    notebook,
    observability,
    proxy,
    scheduler,
    statemachine,
    transformer,
    webhook,
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
    *notebook.TYPES,
    *eventbus.TYPES,
    *cache.TYPES,
    *database.TYPES,
    *jsonschema.TYPES,
    *transformer.TYPES,
    *httpclient.TYPES,
    *webhook.TYPES,
    *proxy.TYPES,
    *dynamic.TYPES,
    *observability.TYPES,
)
