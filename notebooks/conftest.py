"""The demo notebooks under test (nbval) must not depend on who runs them: the AI notebook
uses the fake AI server whenever ANTHROPIC_API_KEY is unset, so it is unset here."""

from __future__ import annotations

import os

os.environ.pop("ANTHROPIC_API_KEY", None)
