"""The data directory: where a service keeps what must survive it (history, API tokens).

By default `.flownb/` in the working directory, so `flownb run`, `flownb history` and a
notebook started in the same folder share one history; `FLOWNB_DATA_DIR` or `--data-dir`
moves it. It is created with mode 0700: it holds the management API's tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

from flownb.errors import FlownbError

ENV = "FLOWNB_DATA_DIR"
HISTORY_ENV = "FLOWNB_HISTORY_DB"
DEFAULT = ".flownb"


def data_dir(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """`path`, else `$FLOWNB_DATA_DIR`, else `./.flownb`; created (0700) unless `create` is off."""
    folder = Path(path or os.environ.get(ENV) or DEFAULT).expanduser().resolve()
    if create:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise FlownbError(
                f"cannot create the data directory {str(folder)!r}: {exc.strerror or exc}; "
                f"choose another with --data-dir or {ENV}"
            ) from None
    return folder


def history_url(folder: str | os.PathLike[str] | None = None, *, create: bool = True) -> str:
    """The history database: `$FLOWNB_HISTORY_DB`, else `history.db` in the data directory."""
    if folder is None and os.environ.get(HISTORY_ENV):
        return os.environ[HISTORY_ENV]
    return f"sqlite:///{data_dir(folder, create=create) / 'history.db'}"
