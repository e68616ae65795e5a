"""Time for one engine: schedules, caches and event windows read `engine.clock`, never `time`.

So a test (or a notebook replaying a day) can drive time by hand: give the engine a
`ManualClock` (`Engine(config, clock=ManualClock(...))`) and every scheduler, schedule trigger,
cache and event window of that engine follows it. Without one, they use `SystemClock`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

# Long sleeps wake this often to re-read the wall clock (it may jump: NTP, suspend, DST tests).
_MAX_NAP = 60.0


class Clock:
    """A source of time. `now` is wall-clock epoch seconds; `monotonic` never goes back."""

    def now(self) -> float:
        raise NotImplementedError

    def monotonic(self) -> float:
        raise NotImplementedError

    async def sleep_until(self, when: float) -> None:
        """Return once `now() >= when`."""
        raise NotImplementedError


class SystemClock(Clock):
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: float) -> None:
        # Naps, not one long sleep: the wall clock can jump while we wait.
        while (delay := when - time.time()) > 0:  # noqa: ASYNC110 - waiting on time itself
            await asyncio.sleep(min(delay, _MAX_NAP))


class ManualClock(Clock):
    """A clock that moves only when told to (`advance`, `set`): the test double for time.

    ```python
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    engine = Engine(config, clock=clock)
    await engine.start()
    await clock.settle()      # timers have planned their first run
    clock.advance(60)
    await clock.settle()      # timers that were due have fired and planned the next
    ```
    """

    def __init__(self, start: float | dt.datetime = 0.0) -> None:
        self._now = start.timestamp() if isinstance(start, dt.datetime) else float(start)
        self._moved = asyncio.Event()
        self._changed = asyncio.Event()
        self._sleepers: list[float] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    @property
    def sleepers(self) -> list[float]:
        """Deadlines of the tasks sleeping on this clock, soonest first."""
        return sorted(self._sleepers)

    async def sleep_until(self, when: float) -> None:
        self._sleepers.append(when)
        self._note_change()
        try:
            while self._now < when:
                await self._moved.wait()
        finally:
            self._sleepers.remove(when)
            self._note_change()

    def _note_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def set(self, when: float | dt.datetime) -> None:
        """Jump to `when` (never backwards) and wake the sleepers that are due."""
        target = when.timestamp() if isinstance(when, dt.datetime) else float(when)
        if target < self._now:
            raise ValueError("a ManualClock does not go backwards")
        self._now = target
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    async def settle(self, sleepers: int = 1, timeout: float = 5.0) -> None:
        """Wait until `sleepers` tasks sleep on this clock and none of them is due.

        After `advance`, this returns once every timer that was due has fired and gone back
        to sleep until its next time.
        """
        async with asyncio.timeout(timeout):
            while len(self._sleepers) < sleepers or any(w <= self._now for w in self._sleepers):
                await self._changed.wait()
