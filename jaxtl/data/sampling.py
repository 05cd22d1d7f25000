"""Training-set size per class: keep at most N images of each class, chosen with a seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import logging

from jaxtl.data.records import Record


def cap_per_class(records: Sequence[Record], per_class: int, seed: int,
                  class_names: Sequence[str]) -> list[Record]:
    """Keeps min(per_class, available) records of every class, in their original order.

    Each class draws its own subset with `default_rng([seed, class_index])`, so the images kept
    for one class do not depend on how many images the other classes have. A class with fewer
    than `per_class` images keeps all of them and a warning is logged.
    """
    if per_class < 0:
        return list(records)
    keep: set[int] = set()
    for label, name in enumerate(class_names):
        members = [i for i, r in enumerate(records) if r.label == label]
        if len(members) < per_class:
            logging.warning("class %r has %d training images, fewer than train_per_class=%d: "
                            "all of them are used", name, len(members), per_class)
            keep.update(members)
            continue
        chosen = np.random.default_rng([seed, label]).choice(len(members), per_class,
                                                             replace=False)
        keep.update(members[i] for i in chosen)
    return [r for i, r in enumerate(records) if i in keep]
