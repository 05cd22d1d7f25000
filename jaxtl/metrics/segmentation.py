"""Segmentation metrics: per-class Dice and IoU of pixels, and instance metrics of nuclei.

Pixels (`pixel_counts`, `dice_iou`): per class c, TP / FP / FN of the predicted class map
against the true one; Dice = 2 TP / (2 TP + FP + FN), IoU = TP / (TP + FP + FN), undefined
(None) for a class absent from both. Over a split the counts of all tiles are pooled (so large
tiles weigh more); "nuclei" is any foreground class against the background.

Instances: predicted nuclei are made from the predicted foreground mask (`instances`):
'components' labels its connected components (8-connectivity), 'watershed' splits touching
nuclei by a watershed on the distance transform: markers are the maxima of the distance to
the background that are at least `MIN_MARKER_DISTANCE` px deep and rise `MARKER_DYNAMIC` px
above the saddle to any higher maximum (the h-maxima transform, so one nucleus gives one
marker; a component without such a maximum is one marker), then the markers flood the inverted
distance level by level (`FLOOD_STEP` px; within a level by 8-connected geodesic dilation, a tie
to the larger id). True instances are the dataset's instance map.

The per-tile metrics follow HoVer-Net's stats_utils (Graham et al. 2019), whose CoNSeP table
is what users compare with; its `remap_label` numbers instances in increasing order of id, as
`_overlaps` does, so "the lower id" below is its order too.

- `dice_1`, HoVer-Net's `get_dice_1`: the Dice of the nucleus pixels (nonzero ids) of the true
  and the predicted instance maps (undefined when both are empty).
- AJI, the aggregated Jaccard index (Kumar et al. 2017), as HoVer-Net's `get_fast_aji`: each
  true instance is paired with the predicted instance of highest IoU among those it overlaps
  (a prediction may be paired with several true instances); AJI = sum |G n P| over the pairs /
  (sum |G u P| over the pairs + |G| of the unpaired true instances + |P| of the predictions
  paired with none). Of predictions with exactly equal IoU the one with the larger union is
  paired (`get_fast_aji` ranks by |G n P| / (|G u P| + 1e-6)), then the lower id.
- PQ, panoptic quality (Kirillov et al. 2019), as HoVer-Net's `get_fast_pq` with match IoU 0.5:
  a true and a predicted instance match when their IoU > 0.5 (unique at that threshold, so no
  ties; compared exactly, |G n P| > 0.5 |G u P|); DQ = TP / (TP + FP / 2 + FN / 2), SQ = mean
  IoU of the matches (0 with none; HoVer-Net divides by TP + 1e-6, a relative 1e-6 / TP lower),
  PQ = DQ x SQ; undefined when a tile has neither true nor predicted nuclei.

A split reports the mean of each over the tiles where it is defined, as HoVer-Net's
compute_stats does over images (`dice_nuclei_tile_mean` for `dice_1`; `aji`, `pq`, `dq`, `sq`);
evaluation scores whole tiles, so a tile is one of the dataset's images.

Intervals (`split_metrics` with bootstrap samples): tiles are resampled (`bootstrap.py`), the
pooled pixel counts and the tile means recomputed per resample.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from jaxtl.metrics.bootstrap import bootstrap_intervals

INSTANCE_METHODS = ("watershed", "components")
MATCH_IOU = 0.5  # PQ: a true and a predicted nucleus match above this IoU
MIN_MARKER_DISTANCE = 2.0  # watershed: a marker is a distance maximum at least this deep (px)
MARKER_DYNAMIC = 1.0  # watershed: ... and rises at least this much (px) above its saddles
FLOOD_STEP = 0.5  # watershed: the levels of the distance flooded one after the other (px)
EIGHT_CONNECTED = np.ones((3, 3), bool)


def metric_name(name: str) -> str:
    """'healthy epithelial' -> 'healthy_epithelial' (a class name inside a metric name)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def pixel_counts(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, 3) int64: TP, FP, FN of each class."""
    true, pred = np.asarray(true).ravel(), np.asarray(pred).ravel()
    confusion = np.bincount(true.astype(np.int64) * num_classes + pred.astype(np.int64),
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(confusion)
    return np.stack([tp, confusion.sum(axis=0) - tp, confusion.sum(axis=1) - tp], axis=1)


def dice_iou(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU per row of (TP, FP, FN) counts; NaN where TP + FP + FN = 0."""
    counts = np.asarray(counts, np.float64)
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    return dice, iou


def instances(mask: np.ndarray, method: str) -> np.ndarray:
    """Instance ids (0 background, 1..K) of a boolean nucleus mask."""
    mask = np.asarray(mask, bool)
    if method == "components":
        return ndimage.label(mask, structure=EIGHT_CONNECTED)[0].astype(np.int32)
    if method != "watershed":
        raise ValueError(f"unknown instance method {method!r}; choose one of "
                         f"{', '.join(INSTANCE_METHODS)}")
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndimage.distance_transform_edt(mask)
    markers = ndimage.label(_h_maxima(distance, MARKER_DYNAMIC)
                            & (distance >= MIN_MARKER_DISTANCE),
                            structure=EIGHT_CONNECTED)[0].astype(np.int32)
    # Components with no marker deep enough (small nuclei) are one marker each.
    components, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    unmarked = np.setdiff1d(np.arange(1, count + 1), np.unique(components[markers > 0]))
    lookup = np.zeros(count + 1, np.int32)
    lookup[unmarked] = markers.max() + 1 + np.arange(len(unmarked), dtype=np.int32)
    markers = np.where(lookup[components] > 0, lookup[components], markers).astype(np.int32)
    return _flood(distance, markers, mask)


def _h_maxima(values: np.ndarray, height: float) -> np.ndarray:
    """The tops of the regional maxima that rise at least `height` above every path to a
    higher one (the h-maxima transform: values minus their reconstruction by dilation from
    values - height)."""
    reconstructed = values - height
    while True:
        grown = np.minimum(ndimage.grey_dilation(reconstructed, footprint=EIGHT_CONNECTED),
                           values)
        if np.array_equal(grown, reconstructed):
            break
        reconstructed = grown
    return (values - reconstructed) >= height - 1e-9


def _flood(distance: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Marker-controlled watershed of the inverted distance: from the deepest level down in
    steps of `FLOOD_STEP` px, labels grow into the mask's pixels at or above the level by
    geodesic dilation (8-connected; a pixel reached by two labels at once takes the larger)."""
    labels = np.where(mask, markers, 0).astype(np.int32)
    top = np.ceil(distance.max() / FLOOD_STEP) * FLOOD_STEP
    for level in np.arange(top, 0.0, -FLOOD_STEP):
        region = mask & (distance >= level)
        while True:
            grown = ndimage.grey_dilation(labels, footprint=EIGHT_CONNECTED)
            new = region & (labels == 0) & (grown > 0)
            if not new.any():
                break
            labels[new] = grown[new]
    return labels


def _overlaps(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intersection (T, P), true areas (T,), predicted areas (P,)) of instance maps whose ids
    are relabelled 1..T and 1..P in increasing order of id."""
    true_ids, true_index = np.unique(np.asarray(true).ravel(), return_inverse=True)
    pred_ids, pred_index = np.unique(np.asarray(pred).ravel(), return_inverse=True)
    joint = np.bincount(true_index * len(pred_ids) + pred_index,
                        minlength=len(true_ids) * len(pred_ids)).reshape(len(true_ids),
                                                                        len(pred_ids))
    true_keep, pred_keep = true_ids != 0, pred_ids != 0
    return (joint[true_keep][:, pred_keep].astype(np.float64),
            joint.sum(axis=1)[true_keep].astype(np.float64),
            joint.sum(axis=0)[pred_keep].astype(np.float64))


def dice_1(true: np.ndarray, pred: np.ndarray) -> float | None:
    """Dice of the nucleus pixels (ids > 0) of two instance maps, HoVer-Net's `get_dice_1`;
    None when neither has any."""
    dice, _ = dice_iou(pixel_counts(np.asarray(true) > 0, np.asarray(pred) > 0, 2)[1])
    return _value(dice)


def aji(true: np.ndarray, pred: np.ndarray) -> float | None:
    """Aggregated Jaccard index of two instance maps (see the module doc); None when both are
    empty."""
    inter, true_area, pred_area = _overlaps(true, pred)
    if len(true_area) == 0 and len(pred_area) == 0:
        return None
    if len(true_area) == 0 or len(pred_area) == 0:
        return 0.0
    union = true_area[:, None] + pred_area[None, :] - inter
    # IoUs are ratios of pixel counts (below 2^26), so float64 division orders them exactly and
    # gives equal ratios equal values: ties are exact. Of the tied, the larger union, then the
    # first (lower) id, as `get_fast_aji`'s argmax of inter / (union + 1e-6).
    iou = inter / union
    best_iou = iou.max(axis=1)
    best = np.where(iou == best_iou[:, None], union, -1.0).argmax(axis=1)
    paired = best_iou > 0
    rows = np.flatnonzero(paired)
    total_inter = inter[rows, best[rows]].sum()
    total_union = (union[rows, best[rows]].sum() + true_area[~paired].sum()
                   + pred_area[np.setdiff1d(np.arange(len(pred_area)), best[rows])].sum())
    return float(total_inter / total_union)


@dataclasses.dataclass(frozen=True)
class Panoptic:
    pq: float | None
    dq: float | None
    sq: float | None
    tp: int
    fp: int
    fn: int


def panoptic(true: np.ndarray, pred: np.ndarray) -> Panoptic:
    """Panoptic quality with matches at IoU > `MATCH_IOU` (see the module doc)."""
    inter, true_area, pred_area = _overlaps(true, pred)
    if len(true_area) == 0 and len(pred_area) == 0:
        return Panoptic(None, None, None, 0, 0, 0)
    union = true_area[:, None] + pred_area[None, :] - inter
    # Exact on the integer counts (MATCH_IOU x union is exact for 0.5); at most one match per
    # row and column above 0.5.
    matched = inter > MATCH_IOU * union
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=matched)
    tp = int(matched.sum())
    fp, fn = len(pred_area) - tp, len(true_area) - tp
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(iou[matched].mean()) if tp else 0.0
    return Panoptic(dq * sq, dq, sq, tp, fp, fn)


@dataclasses.dataclass(frozen=True)
class TileScore:
    """What one tile contributes to a split's metrics."""

    tile: str
    counts: np.ndarray  # (classes, 3) TP, FP, FN per class
    nuclei_counts: np.ndarray  # (3,) TP, FP, FN of foreground vs background
    dice_1: float | None  # HoVer-Net's Dice of the instance maps' nuclei
    aji: float | None
    panoptic: Panoptic


def score_tile(tile: str, true_classes: np.ndarray, true_instances: np.ndarray,
               pred_classes: np.ndarray, num_classes: int, method: str) -> TileScore:
    pred_instances = instances(pred_classes > 0, method)
    return TileScore(tile, pixel_counts(true_classes, pred_classes, num_classes),
                     pixel_counts(true_classes > 0, pred_classes > 0, 2)[1],
                     dice_1(true_instances, pred_instances),
                     aji(true_instances, pred_instances),
                     panoptic(true_instances, pred_instances))


def _value(number: float) -> float | None:
    return None if not np.isfinite(number) else float(number)


def split_metrics(tiles: Sequence[TileScore], class_names: Sequence[str], *,
                  bootstrap_samples: int = 0, seed: int = 0) -> dict[str, Any]:
    """Pooled pixel Dice/IoU (nuclei, per class, mean over the foreground classes); means over
    the tiles of HoVer-Net's nuclei Dice, AJI, PQ, DQ, SQ; per-tile values; and with
    `bootstrap_samples` tile-resampled intervals."""
    counts = np.stack([t.counts for t in tiles])
    nuclei = np.stack([t.nuclei_counts for t in tiles])
    per_tile = {  # the split's key -> each tile's value, averaged over the defined ones
        "dice_nuclei_tile_mean": np.array([np.nan if t.dice_1 is None else t.dice_1
                                           for t in tiles]),
        "aji": np.array([np.nan if t.aji is None else t.aji for t in tiles]),
        **{key: np.array([np.nan if getattr(t.panoptic, key) is None
                          else getattr(t.panoptic, key) for t in tiles])
           for key in ("pq", "dq", "sq")}}

    def compute(weights: np.ndarray | None) -> dict[str, Any]:
        w = np.ones(len(tiles)) if weights is None else np.asarray(weights, np.float64)
        dice, iou = dice_iou(np.tensordot(w, counts, axes=1))
        nuclei_dice, nuclei_iou = dice_iou(np.tensordot(w, nuclei, axes=1))
        out: dict[str, Any] = {"dice_nuclei": _value(nuclei_dice),
                               "iou_nuclei": _value(nuclei_iou)}
        foreground = dice[1:]
        out["dice_mean"] = (_value(float(np.mean(foreground)))
                            if np.isfinite(foreground).all() else None)
        for index, name in enumerate(class_names):
            out[f"dice_{metric_name(name)}"] = _value(dice[index])
            out[f"iou_{metric_name(name)}"] = _value(iou[index])
        for key, values in per_tile.items():
            defined = np.isfinite(values) & (w > 0)
            out[key] = (float(np.sum(w[defined] * values[defined]) / np.sum(w[defined]))
                        if defined.any() else None)
        return out

    result = compute(None)
    result["count"] = len(tiles)
    result["nuclei"] = {"true": int(sum(t.panoptic.tp + t.panoptic.fn for t in tiles)),
                        "predicted": int(sum(t.panoptic.tp + t.panoptic.fp for t in tiles)),
                        "matched": int(sum(t.panoptic.tp for t in tiles))}
    result["per_tile"] = {
        t.tile: {"dice_nuclei": _value(dice_iou(t.nuclei_counts)[0]), "dice_1": t.dice_1,
                 "aji": t.aji, "pq": t.panoptic.pq} for t in tiles}
    if bootstrap_samples > 0:
        result.update(bootstrap_intervals(compute, [t.tile for t in tiles], bootstrap_samples,
                                          seed))
    return result
