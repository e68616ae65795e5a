"""Token buckets per client key, with bounded memory.

Each key gets a bucket of `burst` tokens refilled at `rate` tokens per second. Buckets are
kept in least-recently-used order; past `max_keys`, the least recently seen are dropped. A
dropped bucket that had refilled is no loss at all (a new bucket starts full); one that had
not gives that client a fresh burst, which only happens beyond `max_keys` active clients.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBuckets:
    __slots__ = ("_buckets", "_clock", "burst", "max_keys", "rate")

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        buckets = self._buckets
        found = buckets.pop(key, None)
        if found is None:
            tokens = float(self.burst)
            if len(buckets) >= self.max_keys:
                self._evict()
        else:
            tokens = min(float(self.burst), found[0] + (now - found[1]) * self.rate)
        if tokens >= 1.0:
            buckets[key] = (tokens - 1.0, now)
            return 0.0
        buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _evict(self) -> None:
        """Drop the least recently seen tenth of the buckets (amortises the cost)."""
        buckets = self._buckets
        for key in list(buckets)[: max(1, len(buckets) // 10)]:
            del buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(seconds: float) -> str:
    """Whole seconds for a Retry-After header, at least 1."""
    return str(max(1, math.ceil(seconds)))
