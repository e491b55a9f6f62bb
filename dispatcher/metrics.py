"""A tiny Prometheus registry: counters, histograms and callback gauges, text format 0.0.4.

Enough for the dispatcher's few metrics without a client library; label values are escaped as
the exposition format requires.
"""

import bisect
import math
from collections.abc import Callable, Iterable, Mapping

Labels = tuple[tuple[str, str], ...]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Finer below 100 ms, where the event delivery targets are.
EVENT_AGE_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
    0.3, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def _labels(values: Mapping[str, str]) -> Labels:
    return tuple(sorted(values.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _render_labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = _labels(labels)
        self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(_labels(labels), 0)

    def samples(self) -> list[str]:
        return [f"{self.name}{_render_labels(k)} {_number(v)}" for k, v in self._values.items()]


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help = name, help_text
        self._buckets = buckets
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        counts, totals = self._series.setdefault(
            _labels(labels), ([0] * (len(self._buckets) + 1), [0.0])
        )
        counts[bisect.bisect_left(self._buckets, value)] += 1
        totals[0] += value

    def samples(self) -> list[str]:
        lines: list[str] = []
        for key, (counts, totals) in self._series.items():
            running = 0
            for bound, count in zip([*self._buckets, math.inf], counts, strict=True):
                running += count
                le = (("le", _number(bound)),)
                lines.append(f"{self.name}_bucket{_render_labels(key, le)} {running}")
            lines.append(f"{self.name}_sum{_render_labels(key)} {_number(totals[0])}")
            lines.append(f"{self.name}_count{_render_labels(key)} {running}")
        return lines


class Gauge:
    """Read when scraped, from a callback returning label values -> value."""

    kind = "gauge"

    def __init__(
        self, name: str, help_text: str, read: Callable[[], Mapping[Labels, float]]
    ) -> None:
        self.name, self.help = name, help_text
        self._read = read

    def samples(self) -> list[str]:
        return [f"{self.name}{_render_labels(k)} {_number(v)}" for k, v in self._read().items()]


Metric = Counter | Histogram | Gauge


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Metric:
        existing = self._metrics.get(metric.name)
        if existing is not None:
            if type(existing) is not type(metric):
                raise ValueError(f"metric {metric.name} registered twice as different kinds")
            return existing
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str) -> Counter:
        metric = self._add(Counter(name, help_text))
        assert isinstance(metric, Counter)
        return metric

    def histogram(
        self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        metric = self._add(Histogram(name, help_text, buckets))
        assert isinstance(metric, Histogram)
        return metric

    def gauge(self, name: str, help_text: str, read: Callable[[], Mapping[Labels, float]]) -> Gauge:
        metric = self._add(Gauge(name, help_text, read))
        assert isinstance(metric, Gauge)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


EVENT_AGE = "crucible_dispatcher_event_age_seconds"
# Where an event's age is taken (the histogram's ``at`` label).
AGE_AT_INGEST, AGE_AT_SSE = "ingest", "sse"


def event_ages(registry: Registry) -> Histogram:
    """How old events are when the dispatcher takes them from a sidecar (``at="ingest"``) and
    when it writes them to a live event stream (``at="sse"``): now minus the event's ``ts``,
    stamped where the event was built, so the skew between the nodes' clocks is in it."""
    return registry.histogram(
        EVENT_AGE,
        "Age of an event (now minus its ts) when a sidecar delivers it and when it goes out "
        "on a live event stream, by where.",
        EVENT_AGE_BUCKETS,
    )
