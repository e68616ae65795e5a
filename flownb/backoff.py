"""Retry timing shared by outgoing calls (`httpclient`, `webhook.sender`).

Delays grow exponentially from `initial` by `multiplier`, capped at `maximum`. `jitter` takes a
random part off each delay (0.2: up to 20% shorter), so many senders that failed together do
not all retry in the same instant. A server's `Retry-After` (seconds or an HTTP date) is
honoured when it asks for longer than the planned delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

# Statuses worth retrying: the server is overloaded, restarting or timed out. Other 4xx are
# the request's fault and fail the same way again.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    initial: float
    maximum: float
    multiplier: float = 2.0
    jitter: float = 0.0
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        base = min(self.maximum, self.initial * self.multiplier**retry)
        return base * (1.0 - self.jitter * self.random()) if self.jitter else base


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (a number, or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def should_retry(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500
