"""The management API: the running service's config, reloads, history, components, dead
letters, metrics and health, over HTTP on its own port, behind tokens.

- `tokens`: read and write tokens (from the environment, or generated once into the data
  directory with mode 0600);
- `models`: the pydantic models of every query, body and reply (the one source of the
  OpenAPI document);
- `routes`: the operations table and their handlers (`ManagementApi`);
- `openapi`: the OpenAPI 3.1 document built from the operations table.

`flownb run` starts it on 127.0.0.1:8700 (`--api-address`, `--no-api`); a notebook can serve
one for an `EngineService` with `ManagementApi(service, tokens=...)`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flownb.management.routes import ManagementApi
    from flownb.management.tokens import Token, Tokens, load_tokens

_HOME = {
    "ManagementApi": "routes",
    "Token": "tokens",
    "Tokens": "tokens",
    "load_tokens": "tokens",
}

__all__ = ["ManagementApi", "Token", "Tokens", "load_tokens"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'flownb.management' has no attribute {name!r}")
    return getattr(importlib.import_module(f"flownb.management.{home}"), name)
