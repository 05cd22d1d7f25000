"""Task losses against hand-computed values: masks, three-way labels, hierarchy, smoothing."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from jaxtl.core import tasks


def bce(z, t):
    return float(np.logaddexp(0.0, z) - t * z)


def test_multilabel_loss_is_the_mean_over_counted_entries():
    task = tasks.multilabel(["a", "b"])
    logits = np.array([[0.5, -1.0], [2.0, 0.3]], np.float32)
    labels = np.array([[1, tasks.MASKED], [0, 1]], np.int32)
    expected = (bce(0.5, 1) + bce(2.0, 0) + bce(0.3, 1)) / 3
    assert float(task.mean_loss(jnp.asarray(logits), jnp.asarray(labels))) == pytest.approx(
        expected, rel=1e-5)


def test_binary_label_never_trains_on_uncertain_values():
    task = tasks.multilabel(["a"])
    loss = task.mean_loss(jnp.array([[3.0], [1.0]]), jnp.array([[tasks.UNCERTAIN], [1]]))
    assert float(loss) == pytest.approx(bce(1.0, 1), rel=1e-5)


def test_three_way_label_uses_softmax_over_negative_positive_uncertain():
    task = tasks.multilabel(["u", "b"], three_way=[True, False])
    logits = np.array([[0.1, 0.7, -0.2, 1.5]], np.float32)
    labels = np.array([[tasks.UNCERTAIN, 0]], np.int32)
    expected = (-log_softmax(logits[0, :3])[2] + bce(1.5, 0)) / 2
    assert float(task.mean_loss(jnp.asarray(logits), jnp.asarray(labels))) == pytest.approx(
        expected, rel=1e-5)


def test_child_loss_counts_only_where_the_parent_is_positive():
    task = tasks.multilabel(["parent", "child"], parents=[-1, 0])
    logits = np.array([[0.2, 0.4], [-0.3, 1.1]], np.float32)
    labels = np.array([[1, 1], [0, 0]], np.int32)  # child of row 2 is not counted
    expected = (bce(0.2, 1) + bce(0.4, 1) + bce(-0.3, 0)) / 3
    assert float(task.mean_loss(jnp.asarray(logits), jnp.asarray(labels))) == pytest.approx(
        expected, rel=1e-5)


def test_label_smoothing_moves_binary_targets_towards_one_half():
    task = tasks.multilabel(["a"])
    z = 0.8
    loss = task.mean_loss(jnp.array([[z]]), jnp.array([[1]]), label_smoothing=0.2)
    target = 1 * 0.8 + 0.1
    assert float(loss) == pytest.approx(float(np.logaddexp(0, z) - target * z), rel=1e-5)


def test_multiclass_loss_is_softmax_cross_entropy():
    task = tasks.multiclass(["a", "b", "c"])
    logits = np.array([[1.0, 2.0, 0.5]], np.float32)
    assert float(task.mean_loss(jnp.asarray(logits), jnp.array([2]))) == pytest.approx(
        -log_softmax(logits[0])[2], rel=1e-5)


def test_invalid_tasks_are_refused():
    with pytest.raises(ValueError, match="cycle|parent chain"):
        tasks.multilabel(["a", "b"], parents=[1, 0])
    with pytest.raises(ValueError, match="three-way"):
        tasks.multilabel(["a", "b"], three_way=[False, True], parents=[-1, 0])
    with pytest.raises(ValueError, match="one entry per label"):
        tasks.multilabel(["a", "b"], three_way=[True])


def test_class_weights_give_torch_weighted_cross_entropy():
    task = tasks.multiclass(["a", "b", "c"])
    logits = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 0.2], [0.0, 0.4, 1.0]], np.float32)
    labels = np.array([2, 0, 0])
    weights = np.array([0.5, 2.0, 3.0])
    ce = [-log_softmax(row)[y] for row, y in zip(logits, labels)]
    expected = sum(weights[y] * c for y, c in zip(labels, ce)) / weights[labels].sum()
    loss = task.mean_loss(jnp.asarray(logits), jnp.asarray(labels), loss_weights=weights)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_positive_weights_give_torch_pos_weight_binary_cross_entropy():
    task = tasks.multilabel(["a", "b"])
    logits = np.array([[0.5, -1.0], [2.0, 0.3]], np.float32)
    labels = np.array([[1, 0], [0, 1]], np.int32)
    pos_weight = np.array([3.0, 0.5])

    def torch_bce(z, y, w):  # torch.nn.BCEWithLogitsLoss(pos_weight=w), one entry
        sigmoid = 1 / (1 + np.exp(-z))
        return -(w * y * np.log(sigmoid) + (1 - y) * np.log(1 - sigmoid))

    expected = np.mean([torch_bce(logits[i, j], labels[i, j], pos_weight[j])
                        for i in range(2) for j in range(2)])
    loss = task.mean_loss(jnp.asarray(logits), jnp.asarray(labels), loss_weights=pos_weight)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_balanced_weights_from_training_labels():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0, 0, 0, 0, 1, 1, 2, 0])
    weights = tasks.balanced_weights(tasks.multiclass(["a", "b", "c", "d"]), labels)
    np.testing.assert_allclose(weights[:3], compute_class_weight(
        "balanced", classes=np.arange(3), y=labels))
    assert weights[3] == 1.0  # absent from training
    multilabel = np.array([[1, 0, 1], [0, tasks.MASKED, 1], [0, 0, 0], [0, 1, 1]])
    task = tasks.multilabel(["x", "y", "z"], parents=[-1, -1, 1])  # z counts where y is positive
    # x: 1 positive, 3 negatives; y: 1 / 2 (one masked); z: counted only in row 4 -> no negative
    np.testing.assert_allclose(tasks.balanced_weights(task, multilabel), [3.0, 2.0, 1.0])


def test_segmentation_loss_is_cross_entropy_plus_soft_dice_over_the_valid_crops():
    from scipy.special import softmax as np_softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (3, 4, 5))
    valid = np.array([True, False, True])
    weights = (0.5, 2.0, 1.0)
    task = tasks.segmentation(["background", "a", "b"], ce_weight=0.7, dice_weight=1.3)
    got = float(task.mean_loss(jnp.asarray(logits), jnp.asarray(labels), 0.0, weights,
                               jnp.asarray(valid)))
    kept_logits, kept_labels = logits[valid].astype(np.float64), labels[valid]
    nll = -np.take_along_axis(log_softmax(kept_logits, -1), kept_labels[..., None], -1)[..., 0]
    w = np.asarray(weights)[kept_labels]
    ce = (w * nll).sum() / w.sum()
    p, y = np_softmax(kept_logits, -1), np.eye(3)[kept_labels]
    dice = [(2 * (p[..., c] * y[..., c]).sum() + 1) / (p[..., c].sum() + y[..., c].sum() + 1)
            for c in range(3)]
    assert got == pytest.approx(0.7 * ce + 1.3 * (1 - np.mean(dice)), rel=1e-5)
    assert task.num_outputs == 3 and task.kind == tasks.SEGMENTATION and not task.multilabel
    with pytest.raises(ValueError, match="not both 0"):
        tasks.segmentation(["background", "a"], ce_weight=0.0, dice_weight=0.0)


def test_the_results_record_reads_back_into_the_same_task():
    for task in (tasks.multiclass(["0", "1", "2"]),
                 tasks.multilabel(["a", "b", "c"], three_way=[True, False, False]),
                 tasks.multilabel(["a", "b", "c"], parents=[-1, 0, -1])):
        record = json.loads(json.dumps(tasks.task_record(task)))
        assert tasks.Task.from_record(record) == task
    assert tasks.task_record(tasks.segmentation(["background", "nucleus"])) == {
        "kind": "segmentation", "names": ["background", "nucleus"], "three_way": [],
        "parents": []}


# --- soft targets of mixed images (mixup / cutmix) ---------------------------------------------

def mixup_target(labels, partner, classes, lam, smoothing):
    """timm's mixup_target: smoothed one-hots (off s / K, on 1 - s + s / K) mixed by lam."""
    off, on = smoothing / classes, 1.0 - smoothing + smoothing / classes
    own = np.where(np.eye(classes)[labels] > 0, on, off)
    other = np.where(np.eye(classes)[partner] > 0, on, off)
    return lam * own + (1 - lam) * other


def test_mixed_softmax_loss_is_cross_entropy_on_timms_mixup_targets():
    task = tasks.multiclass(["a", "b", "c"])
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    partner = labels[::-1]
    for lam, smoothing in [(0.7, 0.0), (0.3, 0.1)]:
        targets = mixup_target(labels, partner, 3, lam, smoothing)
        expected = np.mean(-(targets * log_softmax(logits, axis=1)).sum(1))
        mix = tasks.Mix(jnp.float32(lam), jnp.asarray(partner), jnp.ones(4, bool))
        got = task.mean_loss(jnp.asarray(logits), jnp.asarray(labels), smoothing, mix=mix)
        assert float(got) == pytest.approx(expected, rel=1e-5)
        # class weights mix as the targets do: sum w CE / sum w, w = lam w_y + (1 - lam) w_y'
        weights = np.array([1.0, 2.0, 0.5])
        w = lam * weights[labels] + (1 - lam) * weights[partner]
        ce = -(targets * log_softmax(logits, axis=1)).sum(1)
        got = task.mean_loss(jnp.asarray(logits), jnp.asarray(labels), smoothing,
                             tuple(weights), mix=mix)
        assert float(got) == pytest.approx((w * ce).sum() / w.sum(), rel=1e-5)


def test_a_mix_of_lam_one_with_itself_is_the_hard_label_loss():
    task = tasks.multilabel(["a", "u", "c"], three_way=[False, True, False])
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    labels = jnp.asarray([[1, 2, tasks.MASKED], [0, 1, 1], [1, 0, 0]])
    mix = tasks.Mix(jnp.float32(1.0), labels, jnp.ones(3, bool))
    hard = task.mean_loss(logits, labels, 0.1, (2.0, 3.0, 0.5))
    assert float(task.mean_loss(logits, labels, 0.1, (2.0, 3.0, 0.5), mix=mix)) == \
        pytest.approx(float(hard), rel=1e-6)


def test_mixed_multilabel_loss_uses_soft_binary_targets_counted_in_both_images():
    task = tasks.multilabel(["a", "b", "u"], three_way=[False, False, True])
    logits = np.array([[0.4, -1.2, 0.1, 0.5, -0.3], [1.1, 0.2, -0.7, 0.3, 0.9]], np.float32)
    labels = np.array([[1, tasks.MASKED, 2], [0, 1, 1]])
    partner = labels[::-1]
    lam, smoothing, positive = 0.6, 0.2, np.array([3.0, 1.0, 2.0])
    total, count = 0.0, 0
    for i in range(2):
        for label, columns in ((0, [0]), (1, [1]), (2, [2, 3, 4])):
            own, other = labels[i, label], partner[i, label]
            if own < 0 or other < 0:  # masked in either image: not counted
                continue
            if len(columns) == 1:
                soft = lam * (own * (1 - smoothing) + smoothing / 2) + (1 - lam) * (
                    other * (1 - smoothing) + smoothing / 2)
                z = logits[i, columns[0]]
                loss = -(positive[label] * soft * -np.logaddexp(0, -z)
                         + (1 - soft) * -np.logaddexp(0, z))
            else:
                target = mixup_target(np.array([own]), np.array([other]), 3, lam, smoothing)[0]
                weight = lam * (positive[label] if own == 1 else 1.0) + (1 - lam) * (
                    positive[label] if other == 1 else 1.0)
                loss = weight * -(target * log_softmax(logits[i, columns])).sum()
            total, count = total + loss, count + 1
    mix = tasks.Mix(jnp.float32(lam), jnp.asarray(partner), jnp.ones(2, bool))
    got = task.mean_loss(jnp.asarray(logits), jnp.asarray(labels), smoothing, tuple(positive),
                         mix=mix)
    assert count == 4 and float(got) == pytest.approx(total / count, rel=1e-5)


def test_a_mixed_image_counts_only_where_both_images_are_valid():
    task = tasks.multiclass(["a", "b"])
    logits = jnp.asarray([[0.3, -0.2], [1.0, 0.5], [-0.4, 0.8]])
    labels = jnp.asarray([0, 1, 1])
    valid = jnp.asarray([True, True, False])
    mix = tasks.Mix(jnp.float32(0.5), labels[::-1], valid[::-1])
    targets = mixup_target(np.array([0, 1, 1]), np.array([1, 1, 0]), 2, 0.5, 0.0)
    ce = -(targets * log_softmax(np.asarray(logits), axis=1)).sum(1)
    got = task.mean_loss(logits, labels, valid=valid, mix=mix)
    assert float(got) == pytest.approx(ce[1], rel=1e-5)  # image 0's partner and image 2 are not
    with pytest.raises(ValueError, match="without mixup"):
        tasks.segmentation(["background", "nucleus"]).mean_loss(
            jnp.zeros((1, 2, 2, 2)), jnp.zeros((1, 2, 2), jnp.int32), mix=mix)
