"""flownb: a notebook-centric, event-driven workflow engine."""

from __future__ import annotations

__version__ = "0.1.0"
