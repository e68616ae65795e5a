"""Management API tokens: a write token (everything) and a read token (no changes).

Tokens come from `FLOWNB_API_TOKEN` (write) and `FLOWNB_API_READ_TOKEN` (read) when set;
otherwise from `api-tokens.json` in the data directory, which is created on first start with
two random tokens and mode 0600 (the caller prints them once; they are never logged). A
request sends `Authorization: Bearer TOKEN`; tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flownb.errors import FlownbError

log = logging.getLogger("flownb.management")

Scope = Literal["read", "write"]
WRITE_ENV = "FLOWNB_API_TOKEN"
READ_ENV = "FLOWNB_API_READ_TOKEN"
FILE = "api-tokens.json"
MIN_LENGTH = 16


@dataclass(frozen=True)
class Token:
    name: str
    scope: Scope
    secret: str = ""

    def allows(self, needed: Scope) -> bool:
        return needed == "read" or self.scope == "write"

    def __repr__(self) -> str:  # never show the secret
        return f"<Token {self.name} ({self.scope})>"


class Tokens:
    """The tokens a management API accepts."""

    def __init__(
        self, write: str | None = None, read: str | None = None, *, origin: str = ""
    ) -> None:
        self.origin = origin
        self._tokens: list[Token] = []
        for secret, scope in ((write, "write"), (read, "read")):
            if secret:
                if len(secret) < MIN_LENGTH:
                    raise FlownbError(
                        f"the {scope} token is too short ({len(secret)} characters); use at "
                        f"least {MIN_LENGTH}, e.g. from secrets.token_urlsafe()"
                    )
                self._tokens.append(Token(scope, scope, secret))  # type: ignore[arg-type]
        if not self._tokens:
            raise FlownbError("the management API needs at least one token")

    def check(self, authorization: str | None) -> Token | None:
        """The token an `Authorization: Bearer ...` header carries, if it is one of ours."""
        if not authorization:
            return None
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        given_bytes = given.strip().encode()
        found = None
        for token in self._tokens:  # compare with every token: the time says nothing
            if hmac.compare_digest(given_bytes, token.secret.encode()):
                found = token
        return found

    def secret(self, scope: Scope) -> str | None:
        for token in self._tokens:
            if token.scope == scope:
                return token.secret
        return None


def load_tokens(
    data_dir: Path, environ: Mapping[str, str] | None = None
) -> tuple[Tokens, dict[str, str] | None]:
    """The API's tokens, and the new ones when they were generated just now (to print once)."""
    env = os.environ if environ is None else environ
    if env.get(WRITE_ENV) or env.get(READ_ENV):
        return Tokens(env.get(WRITE_ENV), env.get(READ_ENV), origin="environment"), None
    file = data_dir / FILE
    if file.exists():
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); setting it to 0600", file, mode)
            file.chmod(0o600)
        try:
            saved = json.loads(file.read_text(encoding="utf-8"))
            return Tokens(saved.get("write"), saved.get("read"), origin=str(file)), None
        except (ValueError, AttributeError) as exc:
            raise FlownbError(
                f"{file} is not a token file ({exc}); delete it to get new tokens"
            ) from None
    new = {"write": secrets.token_urlsafe(32), "read": secrets.token_urlsafe(32)}
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it in between: use theirs
        return load_tokens(data_dir, env)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(new, out)
    return Tokens(new["write"], new["read"], origin=str(file)), new
