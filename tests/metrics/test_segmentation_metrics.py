"""Segmentation metrics: pixel Dice/IoU against scikit-learn, AJI and PQ against cases worked
out by hand, instances from masks, and a split's pooled values and tile-resampled intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, jaccard_score

from jaxtl.metrics import segmentation as seg


def test_dice_and_iou_per_class_equal_scikit_learn_on_flattened_masks():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, (40, 50))
    pred = np.where(rng.uniform(size=true.shape) < 0.7, true, rng.integers(0, 4, true.shape))
    dice, iou = seg.dice_iou(seg.pixel_counts(true, pred, 4))
    labels = list(range(4))
    np.testing.assert_allclose(dice, f1_score(true.ravel(), pred.ravel(), labels=labels,
                                              average=None), rtol=1e-12)
    np.testing.assert_allclose(iou, jaccard_score(true.ravel(), pred.ravel(), labels=labels,
                                                  average=None), rtol=1e-12)
    nuclei_dice, _ = seg.dice_iou(seg.pixel_counts(true > 0, pred > 0, 2)[1])
    assert nuclei_dice == pytest.approx(f1_score((true > 0).ravel(), (pred > 0).ravel()))


def test_a_class_absent_from_truth_and_prediction_has_no_dice():
    dice, iou = seg.dice_iou(seg.pixel_counts(np.zeros((3, 3), int), np.zeros((3, 3), int), 3))
    assert dice[0] == 1.0 and np.isnan(dice[1:]).all() and np.isnan(iou[1:]).all()


def two_instance_case():
    """True: A = 4 px (row 0, cols 0-3), B = 2 px (row 2, cols 0-1).
    Predicted: P = 3 px (row 0, cols 1-3: inside A), Q = 2 px (row 2, cols 4-5: no overlap)."""
    true = np.zeros((3, 6), int)
    true[0, 0:4] = 1
    true[2, 0:2] = 2
    pred = np.zeros((3, 6), int)
    pred[0, 1:4] = 7  # ids need not be 1..K
    pred[2, 4:6] = 9
    return true, pred


def test_aji_of_a_hand_computed_case():
    true, pred = two_instance_case()
    # A pairs with P: |A n P| = 3, |A u P| = 4. B overlaps nothing: + |B| = 2 to the union.
    # Q is paired with no true nucleus: + |Q| = 2. AJI = 3 / (4 + 2 + 2).
    assert seg.aji(true, pred) == pytest.approx(3 / 8)


def test_aji_lets_one_prediction_pair_with_several_true_nuclei():
    true = np.array([[1, 1, 0, 2, 2]])
    pred = np.array([[5, 5, 5, 5, 5]])
    # A pairs with P (IoU 2/5), B pairs with P too: C = 2 + 2, U = 5 + 5; P is paired.
    assert seg.aji(true, pred) == pytest.approx(4 / 10)
    assert seg.aji(np.zeros((2, 2), int), np.zeros((2, 2), int)) is None
    assert seg.aji(true, np.zeros_like(true)) == 0.0


def test_pq_of_a_hand_computed_case():
    true, pred = two_instance_case()
    # A-P IoU 3/4 > 0.5: one match. Q unmatched (FP), B unmatched (FN).
    # DQ = 1 / (1 + 0.5 + 0.5) = 0.5; SQ = 0.75; PQ = 0.375.
    result = seg.panoptic(true, pred)
    assert (result.tp, result.fp, result.fn) == (1, 1, 1)
    assert result.dq == pytest.approx(0.5) and result.sq == pytest.approx(0.75)
    assert result.pq == pytest.approx(0.375)


def test_pq_needs_an_iou_above_one_half():
    true = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 1, 1, 1]])  # IoU exactly 0.5: no match
    result = seg.panoptic(true, pred)
    assert (result.tp, result.fp, result.fn, result.pq) == (0, 1, 1, 0.0)
    assert seg.panoptic(np.zeros((2, 2), int), np.zeros((2, 2), int)).pq is None


def disks(centres, radius, shape=(40, 60)):
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return np.any([(rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2 for r, c in centres], axis=0)


def test_watershed_splits_touching_nuclei_that_components_join():
    mask = disks([(20, 20), (20, 32)], 7)  # two disks overlapping in a neck
    assert seg.instances(mask, "components").max() == 1
    split = seg.instances(mask, "watershed")
    assert split.max() == 2 and ((split > 0) == mask).all()
    assert split[20, 16] != split[20, 36]
    # A small nucleus with no marker deep enough is kept whole, apart ones stay apart.
    small = disks([(5, 5)], 1) | disks([(30, 45)], 6)
    assert seg.instances(small, "watershed").max() == 2
    assert seg.instances(small, "components").max() == 2
    with pytest.raises(ValueError, match="watershed"):
        seg.instances(mask, "unknown")


def test_split_metrics_pool_pixels_average_tiles_and_resample_tiles():
    true_a, pred_a = two_instance_case()
    true_b = np.zeros((3, 6), int)
    true_b[1, 1:5] = 3
    tiles = [seg.score_tile("a", (true_a > 0).astype(int), true_a, (pred_a > 0).astype(int),
                            2, "components"),
             seg.score_tile("b", (true_b > 0).astype(int), true_b, (true_b > 0).astype(int),
                            2, "components")]
    result = seg.split_metrics(tiles, ("background", "nucleus"), bootstrap_samples=50, seed=0)
    # Pixels pooled: a has TP 3, FP 2, FN 3; b has TP 4.
    assert result["dice_nuclei"] == pytest.approx(2 * 7 / (2 * 7 + 2 + 3))
    assert result["dice_nucleus"] == result["dice_nuclei"]
    assert result["aji"] == pytest.approx((3 / 8 + 1.0) / 2)
    assert result["pq"] == pytest.approx((0.375 + 1.0) / 2)
    assert result["per_tile"]["b"]["pq"] == 1.0
    assert result["nuclei"] == {"true": 3, "predicted": 3, "matched": 2}
    low, high = result["pq_ci"]
    assert 0.375 <= low <= result["pq"] <= high <= 1.0
    assert result["bootstrap_groups"] == 2 and "bootstrap_note" in result
