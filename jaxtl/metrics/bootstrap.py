"""Bootstrap confidence intervals that resample patients (groups), not images.

A resampled patient brings all of its images, so images of one patient are never treated as
independent. A resample is passed to the metric function as integer sample weights (how often
each image was drawn), which equals duplicating the images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CI_LEVEL = 0.95


def bootstrap_intervals(compute: Callable[[np.ndarray | None], dict[str, Any]],
                        groups: Sequence[str], samples: int, seed: int) -> dict[str, Any]:
    """Percentile intervals of every scalar (and per-label) metric over patient resamples."""
    unique, group_index = np.unique(np.asarray(groups), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        counts = np.bincount(rng.integers(0, len(unique), len(unique)), minlength=len(unique))
        for name, value in _scalars(compute(counts[group_index])).items():
            draws.setdefault(name, []).append(value)
    low, high = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
    flat: dict[str, list[float] | None] = {}
    for name, values in draws.items():
        finite = [v for v in values if v is not None and math.isfinite(v)]
        flat[name] = ([float(np.percentile(finite, low)), float(np.percentile(finite, high))]
                      if finite else None)
    out: dict[str, Any] = {}
    for name, interval in flat.items():
        if "/" in name:  # per-label: auroc/Edema -> auroc_ci: {Edema: [...]}
            family, label = name.split("/", 1)
            out.setdefault(f"{family}_ci", {})[label] = interval
        else:
            out[f"{name}_ci"] = interval
    return out


def _scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        if isinstance(value, dict) and name in ("auroc", "ap"):
            out.update({f"{name}/{label}": v for label, v in value.items()})
        elif isinstance(value, (int, float)) or value is None:
            out[name] = value
    return out
