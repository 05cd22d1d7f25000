"""Training-set size per category (`data.train_per_class` = N), always seeded.

Multiclass tasks: at most N images of each class. Each class draws its own subset with
`default_rng([seed, class_index])`, so the images kept for one class do not depend on how many
images the other classes have.

Multilabel tasks: N images positive for each label plus N images negative for every label.
Labels are served from the rarest (fewest positive training images) to the most common; a
label's quota counts the images already chosen for rarer labels that are also positive for it,
and the rest is drawn with `default_rng([seed, label_index])` from the unchosen images
positive for it. Then N "all negative" images (no label positive or uncertain, at least one
label negative) are drawn with `default_rng([seed, number_of_labels])`. For a one-label task
this is exactly N positives and N negatives.

Segmentation tasks (a record is a whole tile whose pixels carry the labels): N tiles, drawn
with `default_rng(seed)`.

Whenever fewer images are available than asked for, all of them are used and a warning is
logged. The kept records stay in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import logging

from jaxtl.core.tasks import NEGATIVE, POSITIVE, SEGMENTATION, UNCERTAIN, SegmentationTask, Task
from jaxtl.data.records import Record


def sample_training_set(records: Sequence[Record], task: Task | SegmentationTask,
                        per_class: int, seed: int) -> list[Record]:
    if per_class < 0:
        return list(records)
    if task.kind == SEGMENTATION:
        keep = set(_draw(list(range(len(records))), per_class, (seed,), "training tiles",
                         per_class))
        return [r for i, r in enumerate(records) if i in keep]
    if task.multilabel:
        return cap_per_label(records, per_class, seed, task.names)
    return cap_per_class(records, per_class, seed, task.names)


def _draw(members: list[int], count: int, seed: Sequence[int], what: str,
          per_class: int) -> list[int]:
    if len(members) <= count:
        if len(members) < count:
            logging.warning("%s: %d training images, fewer than the %d asked for by "
                            "train_per_class=%d: all of them are used", what, len(members),
                            count, per_class)
        return members
    chosen = np.random.default_rng(list(seed)).choice(len(members), count, replace=False)
    return [members[i] for i in chosen]


def cap_per_class(records: Sequence[Record], per_class: int, seed: int,
                  class_names: Sequence[str]) -> list[Record]:
    """Keeps min(per_class, available) records of every class, in their original order."""
    if per_class < 0:
        return list(records)
    keep: set[int] = set()
    for label, name in enumerate(class_names):
        members = [i for i, r in enumerate(records) if r.label == label]
        keep.update(_draw(members, per_class, (seed, label), f"class {name!r}", per_class))
    return [r for i, r in enumerate(records) if i in keep]


def cap_per_label(records: Sequence[Record], per_class: int, seed: int,
                  label_names: Sequence[str]) -> list[Record]:
    """N positives per label (rarest label first) plus N all-negative images."""
    if per_class < 0:
        return list(records)
    labels = np.asarray([r.label for r in records], np.int64).reshape(len(records),
                                                                      len(label_names))
    positive = labels == POSITIVE
    chosen = np.zeros(len(records), bool)
    order = sorted(range(len(label_names)), key=lambda i: (int(positive[:, i].sum()), i))
    for index in order:
        already = int((chosen & positive[:, index]).sum())
        members = np.flatnonzero(positive[:, index] & ~chosen).tolist()
        wanted = max(0, per_class - already)
        if already + len(members) < per_class:
            logging.warning("label %r: %d positive training images, fewer than "
                            "train_per_class=%d: all of them are used", label_names[index],
                            already + len(members), per_class)
        picked = _draw(members, wanted, (seed, index), f"label {label_names[index]!r}",
                       per_class) if len(members) >= wanted else members
        chosen[picked] = True
    negative = (~(positive | (labels == UNCERTAIN)).any(axis=1)
                & (labels == NEGATIVE).any(axis=1) & ~chosen)
    chosen[_draw(np.flatnonzero(negative).tolist(), per_class, (seed, len(label_names)),
                 "negative for every label", per_class)] = True
    return [r for r, keep in zip(records, chosen) if keep]
