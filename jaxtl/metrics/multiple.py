"""Multiple comparisons: Holm's step-down adjustment (statsmodels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (Holm 1979), in the order given; a difference holds at level
    alpha when its adjusted p-value is below alpha. The family-wise error rate stays at alpha."""
    if not len(p_values):
        return []
    from statsmodels.stats.multitest import multipletests  # slow to import: only when needed

    return [float(p) for p in multipletests(np.asarray(p_values, np.float64), method="holm")[1]]
