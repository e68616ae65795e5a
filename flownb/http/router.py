"""Path templates and the route table.

A template is a path with `{name}` parameters (one path segment) or `{name:regex}` ones
(the regex decides, and may cross `/`). Static paths are found by one dict lookup; templated
paths by their precompiled regexes, tried in the order they were added, after the static ones.
Each path knows its methods, so a known path with a wrong method is a 405 with `Allow`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from flownb.errors import FlownbError

if TYPE_CHECKING:
    from flownb.http.middleware import Middleware
    from flownb.http.reply import Reply
    from flownb.http.request import Request

Endpoint = Callable[["Request"], Awaitable["Reply"]]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEGMENT = "[^/]+"


class PathPattern:
    """A compiled template: `regex` is None for a static path."""

    __slots__ = ("names", "regex", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        self.names: tuple[str, ...] = ()
        self.regex: re.Pattern[str] | None = None
        if "{" in template or "}" in template:
            source, names = _template_regex(template)
            self.names = tuple(names)
            try:
                self.regex = re.compile(source)
            except re.error as exc:
                raise FlownbError(f"path {template!r}: invalid parameter regex: {exc}") from None


def _template_regex(template: str) -> tuple[str, list[str]]:
    out, names, i, n = ["^"], [], 0, len(template)
    while i < n:
        c = template[i]
        if c == "}":
            raise FlownbError(f"path {template!r}: '}}' without '{{' at position {i}")
        if c != "{":
            j = i
            while j < n and template[j] not in "{}":
                j += 1
            out.append(re.escape(template[i:j]))
            i = j
            continue
        depth, j = 1, i + 1
        while j < n and depth:
            depth += {"{": 1, "}": -1}.get(template[j], 0)
            j += 1
        if depth:
            raise FlownbError(f"path {template!r}: '{{' at position {i} is never closed")
        name, sep, pattern = template[i + 1 : j - 1].partition(":")
        name = name.strip()
        if not _NAME.match(name):
            raise FlownbError(
                f"path {template!r}: parameter name {name!r} must be a letter or _ followed by "
                "letters, digits or _"
            )
        if name in names:
            raise FlownbError(f"path {template!r}: parameter {name!r} appears twice")
        if sep and not pattern:
            raise FlownbError(f"path {template!r}: parameter {name!r} has an empty regex")
        names.append(name)
        out.append(f"(?P<{name}>{pattern if sep else _SEGMENT})")
        i = j
    out.append("$")
    return "".join(out), names


class Route:
    """One template served for some methods: the endpoint, with its middlewares compiled in.

    `preflight` answers an OPTIONS request on this path when no route serves OPTIONS: the
    same middleware chain around a bare 204 + Allow, so a CORS middleware can answer it.
    """

    __slots__ = ("endpoint", "methods", "preflight", "template")

    def __init__(
        self, methods: tuple[str, ...], template: str, endpoint: Endpoint, preflight: Endpoint
    ) -> None:
        self.methods = methods
        self.template = template
        self.endpoint = endpoint
        self.preflight = preflight


class PathEntry:
    """Everything routed on one path template, by method."""

    __slots__ = ("allow", "methods", "pattern", "routes")

    def __init__(self, pattern: PathPattern) -> None:
        self.pattern = pattern
        self.methods: dict[str, Route] = {}
        self.routes: list[Route] = []
        self.allow = ""

    def add(self, route: Route) -> None:
        for method in route.methods:
            if method in self.methods:
                raise FlownbError(f"{method} {self.pattern.template} is already routed")
        for method in route.methods:
            self.methods[method] = route
        self.routes.append(route)
        allowed = set(self.methods)
        if "GET" in allowed:
            allowed.add("HEAD")
        allowed.add("OPTIONS")
        self.allow = ", ".join(sorted(allowed))

    def route_for(self, method: str) -> Route | None:
        """The route serving `method`; HEAD falls back to GET. None means 405."""
        route = self.methods.get(method)
        if route is not None:
            return route
        if method == "HEAD":
            return self.methods.get("GET")
        return None

    def preflight_route(self, requested: str | None) -> Route:
        """For OPTIONS without an OPTIONS route: the route of the method asked about."""
        if requested:
            route = self.methods.get(requested.upper())
            if route is not None:
                return route
        return self.routes[0]


class Router:
    """A route table. `lookup(path)` -> (entry, params) or None."""

    def __init__(self, prefix: str = "") -> None:
        if prefix and not prefix.startswith("/"):
            raise FlownbError(f"router prefix {prefix!r} must start with '/'")
        self.prefix = prefix.rstrip("/")
        self._static: dict[str, PathEntry] = {}
        self._dynamic: list[PathEntry] = []
        self._by_template: dict[str, PathEntry] = {}

    def add(
        self,
        methods: str | Iterable[str],
        path: str,
        endpoint: Endpoint,
        *,
        middlewares: Sequence[Middleware] = (),
    ) -> Route:
        """Route `methods` on `path` (the prefix is added) to `endpoint` wrapped in middlewares.

        Middlewares are given outermost first.
        """
        from flownb.http.middleware import chain, options_endpoint

        if not path.startswith("/"):
            raise FlownbError(f"route path {path!r} must start with '/'")
        names = (methods,) if isinstance(methods, str) else tuple(methods)
        if not names:
            raise FlownbError(f"route {path!r} has no methods")
        names = tuple(m.upper() for m in names)
        template = self.prefix + path
        entry = self._by_template.get(template)
        if entry is None:
            entry = PathEntry(PathPattern(template))
        preflight = chain(options_endpoint(entry), middlewares)
        route = Route(names, template, chain(endpoint, middlewares), preflight)
        entry.add(route)
        if template not in self._by_template:
            self._by_template[template] = entry
            if entry.pattern.regex is None:
                self._static[template] = entry
            else:
                self._dynamic.append(entry)
        return route

    def lookup(self, path: str) -> tuple[PathEntry, dict[str, str]] | None:
        entry = self._static.get(path)
        if entry is not None:
            return entry, {}
        for entry in self._dynamic:
            m = entry.pattern.regex.match(path)  # type: ignore[union-attr]
            if m is not None:
                return entry, m.groupdict()
        return None

    @property
    def routes(self) -> list[Route]:
        return [route for entry in self._by_template.values() for route in entry.routes]

    def __len__(self) -> int:
        return len(self._by_template)
