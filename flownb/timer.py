"""Timed repetition, shared by the `scheduler` module, `notebook.job` and the `schedule` trigger.

- `TimerSpec`: the cron / interval / timezone fields of their configs, checked once.

- `Timetable`: when a schedule is due (a cron expression in a timezone, or a fixed interval).
- `Ticker`: a task that sleeps on a `Clock` until the next due time and calls `tick(when)`;
  missed times are skipped, not replayed; the last fire time goes to the `ScheduleStore`, so a
  restarted engine (with a persistent store) does not run the same time twice.
- `JobRuns`: the background runs of one job, at most `limit` at a time; a tick that finds the
  job still busy is skipped and logged; a failing run is logged and the schedule goes on.
- `TimedModule`: the lifecycle the `scheduler` and `notebook.job` modules share: a `Ticker`
  on the engine's clock and schedule store from `start` until `drain`, no new runs once the
  engine stops accepting work.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from flownb.clock import Clock, SystemClock
from flownb.errors import FlownbError
from flownb.fields import Cron, Duration, Spec
from flownb.module import Module
from flownb.stores import MemoryScheduleStore, ScheduleStore

if TYPE_CHECKING:
    from flownb.engine import Engine

log = logging.getLogger("flownb.schedule")


def _check_timezone(value: str) -> str:
    try:
        _zone(value)
    except (ZoneInfoNotFoundError, ValueError):
        import difflib
        import zoneinfo

        close = difflib.get_close_matches(value, zoneinfo.available_timezones(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown timezone {value!r}{hint} (use an IANA name such as 'UTC' or 'Europe/Paris')"
        ) from None
    return value


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # ZoneInfo keeps its own cache of loaded zones


TimeZoneName = Annotated[
    str,
    AfterValidator(_check_timezone),
    Field(description="IANA timezone name the cron expression is read in, e.g. Europe/Paris"),
]


class Timetable:
    """When a schedule is due: after each cron time (in `timezone`) or every `interval` s."""

    __slots__ = ("cron", "fixed_hours", "interval", "tz")

    def __init__(
        self, *, cron: str | None = None, interval: float | None = None, timezone: str = "UTC"
    ) -> None:
        if (cron is None) == (interval is None):
            raise FlownbError("a timetable needs exactly one of cron or interval")
        if interval is not None and interval <= 0:
            raise FlownbError("a schedule interval must be more than 0 seconds")
        self.cron, self.interval, self.tz = cron, interval, _zone(timezone)
        # Cron's rule for the hour repeated when clocks go back: fixed-hour jobs run once.
        self.fixed_hours = cron is not None and "*" not in cron.split()[1]

    def next_after(self, when: float) -> float:
        """The first due time strictly after `when` (epoch seconds)."""
        if self.interval is not None:
            return when + self.interval
        from croniter import croniter

        assert self.cron is not None
        start = dt.datetime.fromtimestamp(when, self.tz)
        times = croniter(self.cron, start)
        due: float = times.get_next(float)
        if self.fixed_hours:
            wall = start.replace(tzinfo=None)
            while dt.datetime.fromtimestamp(due, self.tz).replace(tzinfo=None) == wall:
                due = times.get_next(float)
        return due

    def local(self, when: float) -> dt.datetime:
        """`when` as an aware datetime in the timetable's timezone."""
        return dt.datetime.fromtimestamp(when, self.tz)

    def __repr__(self) -> str:
        what = f"cron {self.cron!r}" if self.cron else f"every {self.interval}s"
        return f"<Timetable {what} in {self.tz.key}>"


Tick = Callable[[dt.datetime], object]


class TimerSpec(Spec):
    """When a job runs: on a cron expression or on an interval (exactly one), in a timezone.

    The config of every timed thing (the `scheduler` module, `notebook.job`, the schedule
    trigger's jobs) starts with these fields.
    """

    cron: Cron | None = Field(None, description="run at these times, e.g. '*/5 * * * *'")
    interval: Duration | None = Field(None, description="or run every so often, e.g. 30s")
    timezone: TimeZoneName = "UTC"

    @model_validator(mode="after")
    def _one_timer(self) -> Self:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron or interval")
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be more than 0 seconds")
        return self

    def timetable(self) -> Timetable:
        return Timetable(cron=self.cron, interval=self.interval, timezone=self.timezone)


class Ticker:
    """Calls `tick(when)` at each due time of a timetable, between `start` and `stop`.

    `when` is the due time (not the moment the task woke), in the timetable's timezone; it is
    what runs receive as `trigger_time`.
    """

    def __init__(
        self,
        key: str,
        timetable: Timetable,
        tick: Tick,
        *,
        clock: Clock,
        store: ScheduleStore,
        run_on_start: bool = False,
        jitter: float = 0.0,
    ) -> None:
        self.key, self.timetable, self.tick = key, timetable, tick
        self.clock, self.store = clock, store
        self.run_on_start, self.jitter = run_on_start, jitter
        self.next_due: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._random = random.Random()

    @property
    def next_run(self) -> dt.datetime | None:
        """The next due time, when running."""
        return None if self.next_due is None else self.timetable.local(self.next_due)

    async def start(self) -> None:
        """Plan the first due time (from the store's last run) and start the timer task."""
        if self._task is not None:
            return
        try:
            last = await self.store.last_run(self.key)
        except Exception:
            log.exception("schedule %s: cannot read the last run; planning from now", self.key)
            last = None
        now = self.clock.now()
        if last is not None and self.timetable.next_after(last) > now:
            self.next_due = self.timetable.next_after(last)  # ran just before a restart
        elif self.run_on_start:
            self.next_due = now
        else:
            self.next_due = self.timetable.next_after(now)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"timer {self.key}")

    async def stop(self) -> None:
        """Stop firing; runs already started are not touched (see `JobRuns`)."""
        task, self._task = self._task, None
        self.next_due = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        timetable, clock = self.timetable, self.clock
        while self.next_due is not None:
            due = self.next_due
            delay = self._random.uniform(0.0, self.jitter) if self.jitter else 0.0
            await clock.sleep_until(due + delay)
            if await self._claim(due):
                try:
                    self.tick(timetable.local(due))
                except Exception:
                    log.exception("schedule %s: tick failed", self.key)
            following = timetable.next_after(due)
            now = clock.now()
            if following <= now:  # fell behind (busy loop, suspend): skip, do not replay
                following = timetable.next_after(now)
            self.next_due = following

    async def _claim(self, due: float) -> bool:
        """Record `due` as run; False if the store says it already ran (another process)."""
        try:
            last = await self.store.last_run(self.key)
            if last is not None and last >= due:
                log.info(
                    "schedule %s: %s already ran; skipped", self.key, self.timetable.local(due)
                )
                return False
            await self.store.set_last_run(self.key, due)
        except Exception:
            log.exception("schedule %s: the schedule store failed; running anyway", self.key)
        return True


RunFn = Callable[[dt.datetime], Awaitable[Any]]


class JobRuns:
    """The background runs of one scheduled job, at most `limit` at a time."""

    def __init__(self, label: str, run: RunFn, *, limit: int = 1) -> None:
        self.label, self.run, self.limit = label, run, limit
        self.started = self.skipped = self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def launch(self, when: dt.datetime) -> bool:
        """Start a run for due time `when`, unless `limit` runs are still going."""
        if len(self._tasks) >= self.limit:
            self.skipped += 1
            log.warning(
                "%s: skipped the run due at %s; %d still running (maxConcurrent %d)",
                self.label,
                when.isoformat(),
                len(self._tasks),
                self.limit,
            )
            return False
        self.started += 1
        task = asyncio.get_running_loop().create_task(self._guarded(when), name=self.label)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _guarded(self, when: dt.datetime) -> None:
        try:
            await self.run(when)
        except asyncio.CancelledError:
            raise
        except FlownbError as exc:
            self.failed += 1
            log.error("%s: run due at %s failed: %s", self.label, when.isoformat(), exc)
        except Exception:
            self.failed += 1
            log.exception("%s: run due at %s failed", self.label, when.isoformat())

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the runs in flight; False if some were still going at the timeout."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    async def cancel(self) -> None:
        """Cancel the runs in flight and wait until they have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


TimerSpecT = TypeVar("TimerSpecT", bound=TimerSpec)


class TimedModule(Module[TimerSpecT]):
    """A module that starts runs at the due times of its config's timer, from `start` until
    `drain`. Subclasses name their timer (`kind`) and say what a due time does (`launch`),
    how runs in flight are cancelled (`cancel_runs`), and may run on start or add jitter."""

    kind: ClassVar[str]  # the timer's key in the schedule store: "<kind>:<name>"

    def __init__(self, name: str, config: TimerSpecT) -> None:
        super().__init__(name, config)
        self.timetable: Timetable | None = None
        self.clock: Clock = SystemClock()
        self.store: ScheduleStore = MemoryScheduleStore()
        self._ticker: Ticker | None = None
        self._engine: Engine | None = None

    async def init(self, engine: Engine) -> None:
        self.timetable = self.config.timetable()
        self.clock = engine.clock
        self.store = engine.stores.schedules
        self._engine = engine

    def run_on_start(self) -> bool:
        """Whether the first run is at start (rather than at the first due time)."""
        return False

    def jitter(self) -> float:
        """Seconds each run may be delayed by, at random (0: none)."""
        return 0.0

    def launch(self, when: dt.datetime) -> None:
        """Start the runs of due time `when` (in the background: the timer goes on)."""
        raise NotImplementedError

    async def cancel_runs(self) -> None:
        """Cancel the runs still in flight (at `stop`)."""
        raise NotImplementedError

    async def start(self) -> None:
        assert self.timetable is not None, "init() runs before start()"
        self._ticker = Ticker(
            f"{self.kind}:{self.name}",
            self.timetable,
            self._tick,
            clock=self.clock,
            store=self.store,
            run_on_start=self.run_on_start(),
            jitter=self.jitter(),
        )
        await self._ticker.start()

    @property
    def next_run(self) -> dt.datetime | None:
        return None if self._ticker is None else self._ticker.next_run

    def _tick(self, when: dt.datetime) -> None:
        if self._engine is not None and not self._engine.accepting:
            return  # the engine is stopping: no new runs
        self.launch(when)

    async def drain(self) -> None:
        if self._ticker is not None:
            await self._ticker.stop()

    async def stop(self) -> None:
        await self.drain()
        self._ticker = None
        await self.cancel_runs()
