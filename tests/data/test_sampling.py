"""Per-class cap on training images."""

from __future__ import annotations

import collections

from jaxtl.data.records import Record
from jaxtl.data.sampling import cap_per_class

NAMES = ("a", "b", "c")


def records(counts):
    out = []
    for label, count in enumerate(counts):
        out += [Record(f"{label}_{i}", f"/x/{label}_{i}", label, str(i)) for i in range(count)]
    return out


def test_keeps_n_per_class_or_all_when_fewer():
    kept = cap_per_class(records([50, 7, 20]), 10, seed=0, class_names=NAMES)
    assert collections.Counter(r.label for r in kept) == {0: 10, 1: 7, 2: 10}


def test_warns_when_a_class_has_fewer(caplog):
    cap_per_class(records([50, 7]), 10, seed=0, class_names=NAMES[:2])
    assert "class 'b' has 7 training images, fewer than train_per_class=10" in caplog.text


def test_seeded_and_reproducible():
    data = records([100, 100, 100])
    first = cap_per_class(data, 10, seed=1, class_names=NAMES)
    assert first == cap_per_class(data, 10, seed=1, class_names=NAMES)
    assert first != cap_per_class(data, 10, seed=2, class_names=NAMES)


def test_a_class_choice_does_not_depend_on_other_classes():
    small = cap_per_class(records([100, 5]), 10, seed=0, class_names=NAMES[:2])
    large = cap_per_class(records([100, 500]), 10, seed=0, class_names=NAMES[:2])
    assert [r for r in small if r.label == 0] == [r for r in large if r.label == 0]


def test_minus_one_keeps_everything_in_order():
    data = records([5, 3])
    assert cap_per_class(data, -1, seed=0, class_names=NAMES[:2]) == data
