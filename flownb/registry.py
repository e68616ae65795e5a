"""The module-type registry: the one place that says which module types exist.

Each type registers its name, category, description, config model, the services it provides
and a factory. The validator, the engine, the canvas palette and forms, and the AI tools all
read it; `json_schema()` is what they share. Third-party types arrive through the
`flownb.modules` entry-point group (each entry point is a `ModuleType` or an iterable of them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel

from flownb.errors import FlownbError, UnknownNameError
from flownb.fields import ref_fields

if TYPE_CHECKING:
    from flownb.module import Module

Category = Literal[
    "HTTP",
    "Middleware",
    "Messaging",
    "State Machine",
    "Events",
    "Integration",
    "Scheduling",
    "Infrastructure",
    "Database",
    "Observability",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
ENTRY_POINT_GROUP = "flownb.modules"

Factory = Callable[[str, Any], "Module[Any]"]


@dataclass(frozen=True)
class ModuleType:
    """Everything the system knows about one module type, declared once."""

    name: str
    category: Category
    description: str
    config: type[BaseModel]
    factory: Factory
    provides: tuple[str, ...] = ()
    extra_requires: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise FlownbError(
                f"module type {self.name!r}: category {self.category!r} is not one of "
                f"{', '.join(CATEGORIES)}"
            )

    @property
    def requires(self) -> tuple[str, ...]:
        """Service kinds this type's config refers to (read off its Ref fields)."""
        kinds = [ref.kind for ref in ref_fields(self.config).values()]
        for sub in _nested_models(self.config):
            kinds.extend(ref.kind for ref in ref_fields(sub).values())
        return tuple(dict.fromkeys([*kinds, *self.extra_requires]))

    def schema(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "category": self.category,
            "description": self.description,
            "provides": list(self.provides),
            "requires": list(self.requires),
            "configSchema": self.config.model_json_schema(by_alias=True),
        }


def _nested_models(model: type[BaseModel], seen: set[type] | None = None) -> Iterator[type]:
    seen = set() if seen is None else seen
    for info in model.model_fields.values():
        for sub in _model_types(info.annotation):
            if sub not in seen:
                seen.add(sub)
                yield sub
                yield from _nested_models(sub, seen)


def _model_types(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _model_types(arg)


class Registry:
    """An explicit, instance-scoped registry of module types."""

    def __init__(self, types: Iterable[ModuleType] = ()) -> None:
        self._types: dict[str, ModuleType] = {}
        for t in types:
            self.register(t)

    def register(self, module_type: ModuleType, *, replace: bool = False) -> ModuleType:
        if module_type.name in self._types and not replace:
            raise FlownbError(f"module type {module_type.name!r} is already registered")
        self._types[module_type.name] = module_type
        return module_type

    def unregister(self, name: str) -> None:
        self.get(name)
        del self._types[name]

    def get(self, name: str) -> ModuleType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownNameError("module type", name, list(self._types)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[ModuleType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def names(self) -> list[str]:
        return list(self._types)

    def providers_of(self, kind: str) -> list[str]:
        return [t.name for t in self if kind in t.provides]

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register the types published by installed plugins; returns their names."""
        added: list[str] = []
        for ep in entry_points(group=group):
            try:
                loaded = ep.load()
            except Exception as exc:
                raise FlownbError(f"plugin entry point {ep.name!r} failed to load: {exc}") from exc
            items = [loaded] if isinstance(loaded, ModuleType) else list(loaded)
            for item in items:
                if not isinstance(item, ModuleType):
                    raise FlownbError(
                        f"plugin entry point {ep.name!r} must give ModuleType objects, "
                        f"got {type(item).__name__}"
                    )
                self.register(item)
                added.append(item.name)
        return added

    def json_schema(self) -> dict[str, Any]:
        """Every type's schema, grouped for the palette; what the canvas and AI tools read."""
        return {
            "categories": list(CATEGORIES),
            "types": {t.name: t.schema() for t in sorted(self, key=lambda t: t.name)},
        }


@functools.cache
def _plugin_types() -> tuple[ModuleType, ...]:
    scratch = Registry()
    scratch.load_entry_points()
    return tuple(scratch)


def default_registry() -> Registry:
    """A new registry holding the built-in types and those of installed plugins."""
    from flownb.modules import BUILTIN_TYPES

    return Registry((*BUILTIN_TYPES, *_plugin_types()))


def json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """JSON Schema of every registered module type (see `Registry.json_schema`)."""
    return (registry or default_registry()).json_schema()
