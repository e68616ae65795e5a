"""Reading component sources: from a string, a file, or every `*.py` file of a directory.

A component's name is the string its source assigns to a top-level `name`; a file without one
is named after the file (`score.py` -> `score`). Loading reads and names; checking happens
when a source is registered (`ComponentRegistry.register`) or validated (`validate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flownb.dynamic.checker import check
from flownb.dynamic.contract import DEFAULT_IMPORTS, CheckError, Options, Source, declared_name
from flownb.dynamic.registry import Component, ComponentRegistry
from flownb.errors import FlownbError


def load_string(text: str, name: str | None = None, origin: str = "<string>") -> Source:
    """A source from text; `name` overrides (or stands in for) the declared one."""
    found = name or declared_name(text)
    if not found:
        raise FlownbError(f'{origin}: a component needs a name: add `name = "..."` at the top')
    return Source(found, text, origin)


def load_file(path: str | Path) -> Source:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlownbError(f"component file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlownbError(f"cannot read component file {str(file)!r}: {exc}") from None
    resolved = file.resolve()
    return Source(declared_name(text) or file.stem, text, str(resolved), resolved)


def component_files(directory: str | Path) -> list[Path]:
    """The component files of a directory: `*.py`, not hidden, not starting with `_`."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FlownbError(f"components directory {str(folder)!r} does not exist")
    return sorted(p for p in folder.glob("*.py") if is_component_file(p))


def is_component_file(path: Path) -> bool:
    return path.suffix == ".py" and not path.name.startswith((".", "_"))


def validate(source: Source, imports: Iterable[str] = DEFAULT_IMPORTS) -> None:
    """Raise `CheckError` (every problem, with line:col) if `source` fails the sandbox check."""
    check(source.text, source.origin, tuple(imports))


def load_directory(
    registry: ComponentRegistry, directory: str | Path, options: Options | None = None
) -> list[CheckError]:
    """Register every component file of `directory`; sources failing their check are listed
    in the registry with state `error` and returned, the rest are registered."""
    problems: list[CheckError] = []
    for path in component_files(directory):
        try:
            registry.register(load_file(path), options)
        except CheckError as exc:
            problems.append(exc)
    return problems


def _read_if_present(path: Path) -> Source | None:
    """The file's source, or None if the file is gone."""
    if not path.exists():
        return None
    try:
        return load_file(path)
    except FlownbError:
        if not path.exists():  # deleted between the check and the read
            return None
        raise


async def sync_file(registry: ComponentRegistry, path: Path) -> Component | None:
    """Bring the registry in line with one file: new, changed or deleted (hot reload).

    A changed file swaps versions (`Component.replace`); a new one is registered (and started
    if the registry autostarts); a deleted one is unregistered. Returns the component, if any.
    """
    current = registry.by_path(path)
    try:
        source = _read_if_present(path)
    except FlownbError as exc:  # unreadable right now (half-written, permissions)
        if current is not None:
            current.last_error = str(exc)
        return current
    if source is None:
        registry.forget_error(path)
        if current is not None:
            await registry.unregister(current.name)
        return None
    if current is not None and current.name != source.name:
        await registry.unregister(current.name)  # the file now declares another name
        current = None
    if current is not None:
        if source.text != current.source.text:
            await current.replace(source)
        return current
    try:
        component = registry.register(source)
    except CheckError:
        return None
    if registry.autostart:
        await component.start()
    return component
