"""Patient-wise splits: every image of a patient lands in the same split, chosen with a seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxtl.data.records import Record


def assign_patients(patients: Sequence[str], fractions: dict[str, float],
                    seed: int) -> dict[str, str]:
    """Patient -> split name. `fractions` maps split names to fractions of the patients.

    The sorted (natural order) patient ids are permuted with `default_rng(seed)`; the splits
    take round(fraction * P) consecutive patients of the permutation in the order given; the
    last split named gets the rest.
    """
    ordered = sorted(set(patients), key=lambda p: (len(p), p))
    order = np.random.default_rng(seed).permutation(len(ordered))
    names = list(fractions)
    bounds, start = [], 0
    for name in names[:-1]:
        start += round(fractions[name] * len(ordered))
        bounds.append(start)
    split_of = {}
    for rank, index in enumerate(order):
        position = sum(rank >= bound for bound in bounds)
        split_of[ordered[index]] = names[position]
    return split_of


def split_by_patient(records: Sequence[Record], *, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[list[Record], list[Record], list[Record]]:
    """Train, val and test records; the first round(test_fraction * P) permuted patients are
    the test split, the next round(val_fraction * P) the validation split, the rest train."""
    split_of = assign_patients([r.patient for r in records],
                               {"test": test_fraction, "val": val_fraction, "train": 1.0},
                               seed)
    by_split: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for record in records:
        by_split[split_of[record.patient]].append(record)
    return by_split["train"], by_split["val"], by_split["test"]
