"""Small summary statistics shared by scenarios."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)) - 1, 0)
    return float(ordered[rank])


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)
