"""Prometheus metrics of one engine (or one service across its reloads).

`Metrics` is an execution observer and the HTTP servers' request observer. It counts into
plain dicts on the engine's event loop (no locks, no prometheus-client objects on the hot
path) and turns them into metric families only when scraped, through a collector in its own
`CollectorRegistry`: several engines in one process (a notebook kernel, tests) never share a
registry, and the process-global default registry is never touched.

Metrics (label values are bounded: `path` is the route template, never the raw path):

- `workflow_executions_total{workflow_type,action,status}`, `workflow_duration_seconds
  {workflow_type,action}`, `active_workflows{workflow_type}`;
- `workflow_step_duration_seconds{workflow_type,action,step}`,
  `workflow_step_errors_total{workflow_type,action,step}`;
- `http_requests_total{method,path,status_code}`, `http_request_duration_seconds{method,path}`;
- `module_operations_total{module,operation,status}`: lifecycle phases of every module
  (init, start, drain, stop), executions a handler module ran (`handle`), and whatever a
  module reports with `Engine.record_operation`;
- the process collector's `process_*` (CPU, memory, open files).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from flownb.execution import ExecutionContext

# prometheus-client's default buckets (seconds): 5 ms to 10 s.
BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
STEP_BUCKETS: tuple[float, ...] = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "<unmatched>"  # the path label of requests no route matched (404)


class Histogram:
    """Bucket counts (not cumulative) and the sum of observed values."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out


class _Series:
    """What is kept per (workflow type, action)."""

    __slots__ = ("duration", "status", "steps")

    def __init__(self) -> None:
        self.duration = Histogram(BUCKETS)
        self.status: dict[str, int] = {}
        self.steps: dict[str, tuple[Histogram, list[int]]] = {}


class Metrics:
    """Counters and histograms for one engine or service; see the module docstring."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._active: dict[str, int] = {}
        self._http: dict[tuple[str, str], tuple[Histogram, dict[int, int]]] = {}
        self._operations: dict[tuple[str, str, str], int] = {}
        self._registry: CollectorRegistry | None = None

    # --- execution observer (steps are read from `ctx.trace` when an execution ends) --------
    traces = True

    def execution_started(self, ctx: ExecutionContext) -> None:
        active = self._active
        active[ctx.workflow] = active.get(ctx.workflow, 0) + 1

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        """Not called (the steps come from `ctx.trace`)."""

    def execution_finished(self, ctx: ExecutionContext) -> None:
        active = self._active
        active[ctx.workflow] = max(0, active.get(ctx.workflow, 1) - 1)
        series = self._series_of(ctx)
        status = ctx.status
        series.status[status] = series.status.get(status, 0) + 1
        series.duration.observe(ctx.elapsed)
        trace = ctx.trace
        if trace:
            steps = series.steps
            for row in trace:
                name, step_status, nanoseconds = row[0], row[1], row[2]
                found = steps.get(name)
                if found is None:
                    found = steps[name] = (Histogram(STEP_BUCKETS), [0])
                found[0].observe(nanoseconds / 1e9)
                if step_status != "ok":
                    found[1][0] += 1
        node, engine = ctx.node, ctx.engine
        if node is not None and engine is not None and node in engine.modules:
            self.operation(node, "handle", status)

    def _series_of(self, ctx: ExecutionContext) -> _Series:
        key = (ctx.workflow, ctx.action)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        return series

    # --- HTTP and module operations ------------------------------------------------------------
    def http_request(self, method: str, path: str, status: int, seconds: float) -> None:
        """One request answered: `path` is the route template (or `UNMATCHED`)."""
        key = (method, path)
        found = self._http.get(key)
        if found is None:
            found = self._http[key] = (Histogram(BUCKETS), {})
        found[0].observe(seconds)
        counts = found[1]
        counts[status] = counts.get(status, 0) + 1

    def operation(self, module: str, operation: str, status: str = "ok") -> None:
        key = (module, operation, status)
        self._operations[key] = self._operations.get(key, 0) + 1

    # --- exposition ------------------------------------------------------------------------------
    @property
    def registry(self) -> CollectorRegistry:
        """This object's own registry (created on first use): the collector and process metrics."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry, ProcessCollector

            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Collector(self))
            ProcessCollector(registry=registry)
            self._registry = registry
        return self._registry

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (`CONTENT_TYPE`)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        executions = CounterMetricFamily(
            "workflow_executions",
            "Executions finished, by workflow type, action and status",
            labels=["workflow_type", "action", "status"],
        )
        duration = HistogramMetricFamily(
            "workflow_duration_seconds",
            "Execution duration in seconds",
            labels=["workflow_type", "action"],
        )
        step_duration = HistogramMetricFamily(
            "workflow_step_duration_seconds",
            "Pipeline step duration in seconds",
            labels=["workflow_type", "action", "step"],
        )
        step_errors = CounterMetricFamily(
            "workflow_step_errors",
            "Pipeline steps that failed",
            labels=["workflow_type", "action", "step"],
        )
        for (workflow, action), series in list(self._series.items()):
            for status, count in list(series.status.items()):
                executions.add_metric([workflow, action, status], count)
            d = series.duration
            duration.add_metric([workflow, action], d.cumulative(), d.sum)
            for step, (hist, errors) in list(series.steps.items()):
                step_duration.add_metric([workflow, action, step], hist.cumulative(), hist.sum)
                step_errors.add_metric([workflow, action, step], errors[0])
        active = GaugeMetricFamily(
            "active_workflows", "Executions running now", labels=["workflow_type"]
        )
        for workflow, count in list(self._active.items()):
            active.add_metric([workflow], count)
        requests = CounterMetricFamily(
            "http_requests",
            "HTTP requests answered",
            labels=["method", "path", "status_code"],
        )
        request_duration = HistogramMetricFamily(
            "http_request_duration_seconds",
            "HTTP request duration in seconds",
            labels=["method", "path"],
        )
        for (method, path), (hist, statuses) in list(self._http.items()):
            request_duration.add_metric([method, path], hist.cumulative(), hist.sum)
            for code, count in list(statuses.items()):
                requests.add_metric([method, path, str(code)], count)
        operations = CounterMetricFamily(
            "module_operations",
            "Module operations (lifecycle phases, handled executions, reported work)",
            labels=["module", "operation", "status"],
        )
        for (module, operation, status), count in list(self._operations.items()):
            operations.add_metric([module, operation, status], count)
        yield from (
            executions,
            duration,
            active,
            step_duration,
            step_errors,
            requests,
            request_duration,
            operations,
        )


class _Collector:
    """Adapts `Metrics` to prometheus-client's collector interface."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.families()
