"""Small store interfaces for engine state, with in-memory defaults.

State-machine instances, REST resources and schedule bookkeeping live behind these
protocols so that a later backend (PostgreSQL, shared by several engine processes) can
replace the memory ones without touching the modules that use them. Instances carry a
version for optimistic concurrency: `put` with a stale version fails.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from flownb.deadletters import DeadLetterStore, MemoryDeadLetters
from flownb.errors import ExecutionError


def json_copy(value: Any) -> Any:
    """An independent copy of JSON-shaped data (fast path), else a deep copy."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return copy.deepcopy(value)


class ConflictError(ExecutionError):
    """Another writer changed the record first; retry with fresh data."""

    status = 409


@dataclass
class Instance:
    """A state-machine instance."""

    id: str
    machine: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "machine": self.machine,
            "state": self.state,
            "data": self.data,
            "version": self.version,
            "created": self.created,
            "updated": self.updated,
            "history": self.history,
        }

    def copy(self) -> Instance:
        return Instance(
            self.id,
            self.machine,
            self.state,
            json_copy(self.data),
            self.version,
            self.created,
            self.updated,
            json_copy(self.history),
        )


class StateStore(Protocol):
    async def get(self, machine: str, instance_id: str) -> Instance | None: ...

    async def put(self, instance: Instance, *, expected_version: int | None) -> Instance:
        """Store `instance` (version + 1) if the stored version is `expected_version`."""
        ...

    async def list(
        self, machine: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[Instance]: ...


class ResourceStore(Protocol):
    async def get(self, resource: str, resource_id: str) -> dict[str, Any] | None: ...

    async def put(self, resource: str, resource_id: str, data: dict[str, Any]) -> None: ...

    async def delete(self, resource: str, resource_id: str) -> bool: ...

    async def list(self, resource: str, limit: int = 1000) -> list[dict[str, Any]]: ...


class ScheduleStore(Protocol):
    async def last_run(self, job: str) -> float | None: ...

    async def set_last_run(self, job: str, when: float) -> None: ...


class MemoryStateStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Instance] = {}

    async def get(self, machine: str, instance_id: str) -> Instance | None:
        found = self._items.get((machine, instance_id))
        return found.copy() if found else None

    async def put(self, instance: Instance, *, expected_version: int | None) -> Instance:
        key = (instance.machine, instance.id)
        current = self._items.get(key)
        current_version = current.version if current else None
        if current_version != expected_version:
            raise ConflictError(
                f"instance {instance.id!r} changed concurrently (version {current_version}, "
                f"expected {expected_version})"
            )
        stored = instance.copy()
        stored.version = (expected_version or 0) + 1
        stored.updated = time.time()
        self._items[key] = stored
        return stored.copy()

    async def list(
        self, machine: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[Instance]:
        out = [
            i.copy()
            for i in self._items.values()
            if (machine is None or i.machine == machine) and (state is None or i.state == state)
        ]
        return out[:limit]


class MemoryResourceStore:
    def __init__(self) -> None:
        self._items: dict[str, dict[str, dict[str, Any]]] = {}

    async def get(self, resource: str, resource_id: str) -> dict[str, Any] | None:
        found = self._items.get(resource, {}).get(resource_id)
        return json_copy(found) if found is not None else None

    async def put(self, resource: str, resource_id: str, data: dict[str, Any]) -> None:
        self._items.setdefault(resource, {})[resource_id] = json_copy(data)

    async def delete(self, resource: str, resource_id: str) -> bool:
        return self._items.get(resource, {}).pop(resource_id, None) is not None

    async def list(self, resource: str, limit: int = 1000) -> list[dict[str, Any]]:
        return [json_copy(v) for v in list(self._items.get(resource, {}).values())[:limit]]


class MemoryScheduleStore:
    def __init__(self) -> None:
        self._runs: dict[str, float] = {}

    async def last_run(self, job: str) -> float | None:
        return self._runs.get(job)

    async def set_last_run(self, job: str, when: float) -> None:
        self._runs[job] = when


@dataclass
class Stores:
    """The stores one engine uses; memory by default."""

    state: StateStore = field(default_factory=MemoryStateStore)
    resources: ResourceStore = field(default_factory=MemoryResourceStore)
    schedules: ScheduleStore = field(default_factory=MemoryScheduleStore)
    dead_letters: DeadLetterStore = field(default_factory=MemoryDeadLetters)
