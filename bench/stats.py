"""Small statistics helpers (no numpy: the benchmark runs in the project's own venv)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default; NaN if empty."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def p50_p99(values: Sequence[float]) -> dict[str, float]:
    return {"p50": rnd(percentile(values, 50)), "p99": rnd(percentile(values, 99))}


def rnd(value: float, digits: int = 4) -> float:
    return round(value, digits) if math.isfinite(value) else value
