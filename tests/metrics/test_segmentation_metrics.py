"""Segmentation metrics: pixel Dice/IoU against scikit-learn, AJI and PQ against cases worked
out by hand (HoVer-Net's tie-breaking included) and against a slow literal reading of
HoVer-Net's definitions on random maps, instances from masks, and a split's pooled values,
tile means and tile-resampled intervals."""

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
    # Per tile (HoVer-Net's Dice of the instance maps): a, 6 true px and 5 predicted, 3 shared:
    # 2 x 3 / (6 + 5); b, exact: 1. Their mean, not the pooled Dice.
    assert result["dice_nuclei_tile_mean"] == pytest.approx((6 / 11 + 1.0) / 2)
    assert result["per_tile"]["a"]["dice_1"] == pytest.approx(6 / 11)
    assert result["aji"] == pytest.approx((3 / 8 + 1.0) / 2)
    assert result["pq"] == pytest.approx((0.375 + 1.0) / 2)
    assert result["per_tile"]["b"]["pq"] == 1.0
    assert result["nuclei"] == {"true": 3, "predicted": 3, "matched": 2}
    low, high = result["pq_ci"]
    assert 0.375 <= low <= result["pq"] <= high <= 1.0
    low, high = result["dice_nuclei_tile_mean_ci"]
    assert 6 / 11 <= low <= result["dice_nuclei_tile_mean"] <= high <= 1.0
    assert result["bootstrap_groups"] == 2 and "bootstrap_note" in result


def test_aji_pairs_the_larger_union_of_equal_ious_as_hovernet():
    """True G = 3 px (cols 0-2). Predicted P (id 1) = col 0, inside G; Q (id 2) = cols 1-5.
    IoU(G, P) = 1 / 3 and IoU(G, Q) = 2 / 6 = 1 / 3: equal. HoVer-Net's get_fast_aji ranks by
    inter / (union + 1e-6), 1 / 3.000001 < 2 / 6.000001, so G pairs with Q (the larger union):
    C = 2, U = 6 + |P| (unpaired) = 7, AJI = 2 / 7 = 0.2857. Pairing the first (P) instead
    gives C = 1, U = 3 + |Q| = 8, 1 / 8 = 0.125."""
    true = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[1, 2, 2, 2, 2, 2]])
    assert seg.aji(true, pred) == pytest.approx(2 / 7)
    assert seg.aji(true, np.where(pred == 1, 9, pred)) == pytest.approx(2 / 7)  # ids swapped


def test_aji_pairs_the_lower_id_of_equal_iou_and_union():
    """  row 0: G1 G1 .  .  .      predicted: P  .  .  .  P
         row 1: G1 G1 G2 G2 .                 .  Q  Q  .  .
    G1 (4 px) meets P (2 px) in 1 px and Q (2 px) in 1 px: both IoU 1 / 5, union 5, a tie
    that get_fast_aji's argmax gives to the first (lower) id. G2 (2 px) pairs with Q (IoU 1/3).
    P's id lower: G1-P (1 / 5), G2-Q (1 / 3), nothing unpaired: AJI = 2 / 8.
    Q's id lower: G1-Q, G2-Q, P unpaired (+ 2 px): AJI = 2 / (5 + 3 + 2) = 2 / 10."""
    true = np.array([[1, 1, 0, 0, 0],
                     [1, 1, 2, 2, 0]])
    p_first = np.array([[3, 0, 0, 0, 3],
                        [0, 5, 5, 0, 0]])
    assert seg.aji(true, p_first) == pytest.approx(2 / 8)
    q_first = np.where(p_first == 3, 7, p_first)
    assert seg.aji(true, q_first) == pytest.approx(2 / 10)


def test_tile_mean_dice_differs_from_the_pooled_dice_as_worked_out_by_hand():
    """Tile a: a true nucleus of 8 px predicted exactly (TP 8). Tile b: a true nucleus of 2 px
    and a predicted one of 2 px elsewhere (TP 0, FP 2, FN 2). Pooled: 2 x 8 / (2 x 8 + 2 + 2)
    = 0.8. Per tile, as HoVer-Net: a 1, b 0; mean 0.5."""
    true_a = np.zeros((4, 4), int)
    true_a[:2] = 1
    true_b = np.zeros((4, 4), int)
    true_b[0, :2] = 1
    pred_b = np.zeros((4, 4), int)
    pred_b[3, 2:] = 1
    tiles = [seg.score_tile("a", true_a, true_a, true_a, 2, "components"),
             seg.score_tile("b", true_b, true_b, pred_b, 2, "components")]
    result = seg.split_metrics(tiles, ("background", "nucleus"))
    assert result["dice_nuclei"] == pytest.approx(0.8)
    assert result["dice_nuclei_tile_mean"] == pytest.approx(0.5)
    assert seg.dice_1(np.zeros((2, 2), int), np.zeros((2, 2), int)) is None


# HoVer-Net's definitions (stats_utils.py: remap_label, get_dice_1, get_fast_aji, get_fast_pq)
# read literally: one mask per instance, pairwise loops, its 1e-6 terms.

def hovernet_remap(labels):
    out = np.zeros(labels.shape, np.int32)
    for new_id, old_id in enumerate(i for i in np.unique(labels) if i != 0):
        out[labels == old_id] = new_id + 1
    return out


def hovernet_dice_1(true, pred):
    true, pred = (true > 0).astype(np.int64), (pred > 0).astype(np.int64)
    denominator = np.sum(true + pred)
    return None if denominator == 0 else 2.0 * np.sum(true * pred) / denominator


def hovernet_pairwise(true, pred):
    true_ids = [i for i in np.unique(true) if i != 0]
    pred_ids = [i for i in np.unique(pred) if i != 0]
    inter = np.zeros((len(true_ids), len(pred_ids)))
    union = np.zeros((len(true_ids), len(pred_ids)))
    for t in true_ids:
        t_mask = (true == t).astype(np.uint8)
        for p in np.unique(pred[t_mask > 0]):
            if p == 0:
                continue
            p_mask = (pred == p).astype(np.uint8)
            total = (t_mask + p_mask).sum()
            inter[t - 1, p - 1] = (t_mask * p_mask).sum()
            union[t - 1, p - 1] = total - inter[t - 1, p - 1]
    return true_ids, pred_ids, inter, union


def hovernet_aji(true, pred):
    true_ids, pred_ids, inter, union = hovernet_pairwise(true, pred)
    if not true_ids and not pred_ids:
        return None
    if not true_ids or not pred_ids:
        return 0.0
    ranked = inter / (union + 1.0e-6)
    paired_pred = np.argmax(ranked, axis=1)
    paired_true = np.nonzero(np.max(ranked, axis=1) > 0.0)[0]
    paired_pred = paired_pred[paired_true]
    overall_inter = inter[paired_true, paired_pred].sum()
    overall_union = union[paired_true, paired_pred].sum()
    for t in true_ids:
        if t - 1 not in paired_true:
            overall_union += (true == t).sum()
    for p in pred_ids:
        if p - 1 not in paired_pred:
            overall_union += (pred == p).sum()
    return overall_inter / overall_union


def hovernet_pq(true, pred):
    true_ids, pred_ids, inter, union = hovernet_pairwise(true, pred)
    if not true_ids and not pred_ids:
        return None
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    iou[iou <= 0.5] = 0.0
    paired_true, paired_pred = np.nonzero(iou)
    tp = len(paired_true)
    fp, fn = len(pred_ids) - len(set(paired_pred)), len(true_ids) - len(set(paired_true))
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = iou[paired_true, paired_pred].sum() / (tp + 1.0e-6)
    return tp, fp, fn, dq, sq, dq * sq


def has_equal_iou_ties_of_unequal_unions(true, pred):
    _, pred_ids, inter, union = hovernet_pairwise(true, pred)
    if not pred_ids:
        return False
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    for row_iou, row_union in zip(iou, union):
        best = row_iou == row_iou.max()
        if row_iou.max() > 0 and len(set(row_union[best])) > 1:
            return True
    return False


# (|G|, |G n P|, |P|, |G n Q|, |Q|) of a true G meeting two predictions P, Q of equal IoU and
# unequal unions, e.g. (3, 1, 1, 2, 5): 1 / 3 = 2 / 6.
EQUAL_IOU_MOTIFS = [(g, a, p, b, q) for g in range(2, 7) for a in range(1, g)
                    for b in range(1, g - a + 1) for p in range(a, 7) for q in range(b, 9)
                    if a * (g + q - b) == b * (g + p - a) and g + p - a != g + q - b]


def planted_tie_row(rng, width):
    """One row: G, with P overlapping its first |G n P| px and reaching left, Q its last
    |G n Q| px and reaching right (ids 1 = G; 1 = P, 2 = Q)."""
    g, a, p, b, q = EQUAL_IOU_MOTIFS[rng.integers(len(EQUAL_IOU_MOTIFS))]
    true, pred = np.zeros(width, int), np.zeros(width, int)
    start = p - a
    true[start:start + g] = 1
    pred[:p] = 1
    pred[start + g - b:start + g - b + q] = 2
    assert start + g - b + q <= width
    return true, pred


def random_maps(rng, case):
    """A random true and predicted instance map, ids arbitrary; every other case has a row with
    an equal-IoU tie of unequal unions, odd cases a perturbed copy of the truth (IoU > 0.5
    matches)."""
    width = 20
    rows = int(rng.integers(1, 5))
    true = np.where(rng.uniform(size=(rows, width)) < 0.35, 0,
                    rng.integers(1, 5, (rows, width)))
    if case % 2:
        pred = np.where(rng.uniform(size=true.shape) < 0.2, rng.integers(0, 4, true.shape),
                        true + 5 * (true > 0))
    else:
        pred = np.where(rng.uniform(size=true.shape) < 0.4, 0,
                        rng.integers(1, 6, true.shape))
    if case % 4 < 2:
        tie_true, tie_pred = planted_tie_row(rng, width)
        true = np.vstack([true, np.where(tie_true > 0, tie_true + 10, 0)])
        pred = np.vstack([pred, np.where(tie_pred > 0, tie_pred + 10, 0)])
    true_ids, pred_ids = rng.permutation(40), rng.permutation(40)  # shuffled: any id order
    return np.where(true > 0, true_ids[true] + 1, 0), np.where(pred > 0, pred_ids[pred] + 1, 0)


def test_instance_metrics_equal_a_literal_reading_of_hovernet_on_random_maps():
    rng = np.random.default_rng(7)
    ties = 0
    for case in range(400):
        true, pred = random_maps(rng, case)
        t, p = hovernet_remap(true), hovernet_remap(pred)
        ties += has_equal_iou_ties_of_unequal_unions(t, p)
        expected_dice = hovernet_dice_1(t, p)
        assert seg.dice_1(true, pred) == (None if expected_dice is None
                                          else pytest.approx(expected_dice, rel=1e-12))
        expected_aji = hovernet_aji(t, p)
        assert seg.aji(true, pred) == (None if expected_aji is None
                                       else pytest.approx(expected_aji, rel=1e-12)), case
        expected_pq = hovernet_pq(t, p)
        got = seg.panoptic(true, pred)
        if expected_pq is None:
            assert got.pq is None
            continue
        assert (got.tp, got.fp, got.fn) == expected_pq[:3]
        assert got.dq == pytest.approx(expected_pq[3], rel=1e-12)
        # HoVer-Net's SQ divides by TP + 1e-6: a relative 1e-6 / TP below the mean.
        assert got.sq == pytest.approx(expected_pq[4], rel=2e-6, abs=1e-12)
        assert got.pq == pytest.approx(expected_pq[5], rel=2e-6, abs=1e-12)
    assert len(EQUAL_IOU_MOTIFS) >= 5 and ties >= 150  # the equal-IoU rule was exercised
