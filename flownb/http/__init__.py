"""HTTP machinery shared by the http workflow, the http trigger and the HTTP module types.

- `router`: path templates and the route table;
- `request`: the request view handlers and templates see;
- `reply`: replies, result encoding and the error shape;
- `middleware`: the middleware contract;
- `ratelimit`: token buckets per client;
- `address`: listen addresses;
- `server`: the listener (aiohttp's low-level server) and the dispatch.

Names are imported on first use, so loading a config does not import aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flownb.http.address import split_address
    from flownb.http.middleware import Middleware, chain
    from flownb.http.reply import Reply, error_reply, exception_reply, json_reply, result_reply
    from flownb.http.request import Limits, Request
    from flownb.http.router import Endpoint, PathPattern, Route, Router
    from flownb.http.server import Server

_WHERE = {
    "Endpoint": "router",
    "Limits": "request",
    "Middleware": "middleware",
    "PathPattern": "router",
    "Reply": "reply",
    "Request": "request",
    "Route": "router",
    "Router": "router",
    "Server": "server",
    "chain": "middleware",
    "error_reply": "reply",
    "exception_reply": "reply",
    "json_reply": "reply",
    "result_reply": "reply",
    "split_address": "address",
}

__all__ = [
    "Endpoint",
    "Limits",
    "Middleware",
    "PathPattern",
    "Reply",
    "Request",
    "Route",
    "Router",
    "Server",
    "chain",
    "error_reply",
    "exception_reply",
    "json_reply",
    "result_reply",
    "split_address",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'flownb.http' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"flownb.http.{where}"), name)
    globals()[name] = value
    return value
