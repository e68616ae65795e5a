"""Placeholder: module types of this family are being written."""

from __future__ import annotations

from flownb.registry import ModuleType

TYPES: list[ModuleType] = []
