"""Percentiles as the cluster benchmarks report them."""

import math


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (``p`` in percent) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
