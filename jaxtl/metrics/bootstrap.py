"""Bootstrap confidence intervals that resample patients (groups), not images.

A resampled patient brings all of its images, so images of one patient are never treated as
independent. A resample is passed to the metric function as integer sample weights (how often
each image was drawn), which equals duplicating the images.

A metric can be undefined in a resample (an AUROC whose label drew one class only, a mean over
labels one of which is undefined): such resamples are counted, not hidden. The interval is
taken over the valid resamples and `bootstrap_valid` says how many there were of
`bootstrap_samples`. With fewer than `FEW_GROUPS` patients the percentile interval is known to
be too narrow (it cannot reflect more variation than the few groups show), and the results say
so in `bootstrap_note`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

CI_LEVEL = 0.95
FEW_GROUPS = 30  # fewer patients (groups) than this: the results warn about the intervals
PER_LABEL = ("auroc", "ap", "ece")  # metrics given per label, as {label: value}

Compute = Callable[[np.ndarray | None], dict[str, Any]]  # sample weights (None: all 1) -> metrics


def resample_weights(groups: Sequence[str], samples: int, seed: int) -> Iterator[np.ndarray]:
    """`samples` patient resamples, each as the number of times every image was drawn."""
    unique, group_index = np.unique(np.asarray(groups), return_inverse=True)
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        counts = np.bincount(rng.integers(0, len(unique), len(unique)), minlength=len(unique))
        yield counts[group_index]


def percentile_interval(values: Sequence[float]) -> list[float]:
    low, high = 100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2
    return [float(np.percentile(values, low)), float(np.percentile(values, high))]


def scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Every scalar metric, per-label ones as 'auroc/Edema'."""
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        if isinstance(value, dict) and name in PER_LABEL:
            out.update({f"{name}/{label}": v for label, v in value.items()})
        elif (isinstance(value, (int, float)) and not isinstance(value, bool)) or value is None:
            out[name] = value
    return out


def is_valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def nest(flat: dict[str, Any], suffix: str) -> dict[str, Any]:
    """{'auroc/Edema': x, 'kappa': y} -> {'auroc<suffix>': {'Edema': x}, 'kappa<suffix>': y}."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        if "/" in name:
            family, label = name.split("/", 1)
            out.setdefault(f"{family}{suffix}", {})[label] = value
        else:
            out[f"{name}{suffix}"] = value
    return out


def bootstrap_intervals(compute: Compute, groups: Sequence[str], samples: int,
                        seed: int) -> dict[str, Any]:
    """`<metric>_ci` (percentile intervals over the valid resamples) of every scalar and
    per-label metric, and how many resamples were valid for each."""
    draws: dict[str, list[float]] = {name: [] for name in scalars(compute(None))}
    for weights in resample_weights(groups, samples, seed):
        values = scalars(compute(weights))
        for name in draws:
            if is_valid(values.get(name)):
                draws[name].append(float(values[name]))
    intervals = {name: percentile_interval(values) if values else None
                 for name, values in draws.items()}
    valid = {name: len(values) for name, values in draws.items()}
    groups_count = len(set(groups))
    out: dict[str, Any] = nest(intervals, "_ci")
    out |= {"ci_level": CI_LEVEL, "bootstrap_samples": samples,
            "bootstrap_groups": groups_count, "bootstrap_valid": nest(valid, "")}
    notes = []
    if groups_count < FEW_GROUPS:
        notes.append(f"only {groups_count} patients (groups) to resample: percentile intervals "
                     f"from fewer than {FEW_GROUPS} groups tend to be too narrow")
    short = sorted(name for name, count in valid.items() if 0 < count < samples)
    if short:
        notes.append(f"some metrics were undefined in some resamples (their intervals use the "
                     f"valid ones; bootstrap_valid counts them): {', '.join(short[:5])}"
                     + (" ..." if len(short) > 5 else ""))
    if notes:
        out["bootstrap_note"] = "; ".join(notes)
    return out
