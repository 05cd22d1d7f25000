"""Per-class cap on training images."""

from __future__ import annotations

import collections

from jaxtl.data.records import Record
from jaxtl.data.sampling import cap_per_class, cap_per_label

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
    assert "class 'b': 7 training images, fewer than the 10 asked for by train_per_class=10" in caplog.text


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


def multilabel_records(rows):
    return [Record(f"i{n}", f"/x/i{n}.png", tuple(row), f"p{n}") for n, row in enumerate(rows)]


def test_one_label_task_keeps_n_positives_and_n_negatives():
    rows = [(1,)] * 30 + [(0,)] * 50 + [(-1,)] * 10 + [(2,)] * 5
    kept = cap_per_label(multilabel_records(rows), 10, seed=0, label_names=["opacity"])
    values = [r.label[0] for r in kept]
    assert values.count(1) == 10 and values.count(0) == 10 and len(kept) == 20


def test_multilabel_rule_serves_the_rarest_label_first_and_counts_shared_positives():
    # label b is rarest (3 positives, all also positive for a); a has 20 positives in all.
    rows = [(1, 1)] * 3 + [(1, 0)] * 17 + [(0, 0)] * 40 + [(2, 0)] * 5 + [(-1, -1)] * 5
    kept = cap_per_label(multilabel_records(rows), 5, seed=0, label_names=["a", "b"])
    labels = [r.label for r in kept]
    assert labels.count((1, 1)) == 3  # every b positive (fewer than 5: all, with a warning)
    assert labels.count((1, 0)) == 2  # a's quota of 5 already holds 3
    assert labels.count((0, 0)) == 5  # N images negative for every label
    assert (2, 0) not in labels and (-1, -1) not in labels  # uncertain / nothing negative


def test_multilabel_sample_is_seeded_and_ordered():
    rows = [(int(n % 3 == 0), int(n % 5 == 0)) for n in range(200)]
    data = multilabel_records(rows)
    first = cap_per_label(data, 8, seed=1, label_names=["a", "b"])
    assert first == cap_per_label(data, 8, seed=1, label_names=["a", "b"])
    assert first != cap_per_label(data, 8, seed=2, label_names=["a", "b"])
    positions = [data.index(r) for r in first]
    assert positions == sorted(positions)
