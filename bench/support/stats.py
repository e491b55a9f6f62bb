"""Percentiles as every benchmark reports them: nearest rank, one rule for all."""

import math


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (``p`` in percent) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(seconds: list[float]) -> dict[str, float]:
    """Count, p50, p90, p99 and maximum of durations in seconds, in milliseconds."""
    return {
        "n": len(seconds),
        **{f"p{p}_ms": round(percentile(seconds, p) * 1000, 2) for p in (50, 90, 99)},
        "max_ms": round(max(seconds) * 1000, 2),
    }


def show(name: str, figures: dict[str, float]) -> None:
    """One line of a ``summary``."""
    print(
        f"  {name:40} n={figures['n']:4}  p50 {figures['p50_ms']:8.2f} ms  "
        f"p90 {figures['p90_ms']:8.2f} ms  p99 {figures['p99_ms']:8.2f} ms  "
        f"max {figures['max_ms']:8.2f} ms"
    )
