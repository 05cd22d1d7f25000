"""The report's section for a segmentation study (CoNSeP nuclei): nuclei Dice and PQ against
the number of training tiles per pretraining source, a table of the points, and the predicted
masks of the chosen runs over a few test tiles (the overlays each run drew:
`rundir.SEGMENTATION_OVERLAYS_DIR`). Each metric is labelled with how it is aggregated: the
pooled nuclei Dice and HoVer-Net's mean over tiles of per-tile Dice are different numbers."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

from jaxtl.report import figures, select
from jaxtl.report.document import Document
from jaxtl.workdir import files as rundir

METRICS = ("dice_nuclei", "pq")  # the figures, against training tiles
TABLE_METRICS = ("dice_nuclei", "dice_nuclei_tile_mean", "pq", "aji", "dice_mean")
LABELS = {  # a metric's key -> what the report calls it
    "dice_nuclei": "nuclei Dice pooled over tiles (`dice_nuclei`)",
    "dice_nuclei_tile_mean": "nuclei Dice, mean over tiles as HoVer-Net (`dice_nuclei_tile_mean`)",
    "pq": "PQ, mean over tiles (`pq`)",
    "aji": "AJI, mean over tiles (`aji`)",
    "dice_mean": "Dice of the types pooled over tiles, mean over types (`dice_mean`)",
}
OVERLAYS_PER_RUN = 3
SIZE_LABEL = "training tiles"


def applies(study: select.Study) -> bool:
    """A segmentation study: its runs report panoptic quality."""
    return any(f"{split}.pq" in row for row in study.rows for split in ("val", "test"))


def _text(row: select.Row, split: str, metric: str) -> str:
    point = select.value(row, split, metric)
    if point is None:
        return ""
    ci = select.interval(row, split, metric)
    return f"{point:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _label(row: select.Row) -> str:
    return f"{row.get(select.SOURCE_KEY)}, {row.get(select.SIZE_KEY)} tiles"


def section(doc: Document, sweep_dir: pathlib.Path, study: select.Study,
            chosen_names: Sequence[str], slug: str) -> None:
    doc.heading(f"{study.dataset}: segmentation ({study.split} split)")
    for metric in METRICS:
        view = dataclasses.replace(study, metric=metric)
        png, _ = figures.metric_vs_size(view, {study.dataset: study.rows},
                                        size_label=SIZE_LABEL)
        doc.figure(f"{slug}_{metric}.png", png,
                   f"{study.split} {metric} against the number of training tiles (log scale), "
                   f"one line per pretraining source; where several configurations share a "
                   f"point, the one with the best mean validation {metric} is shown. Dice: "
                   f"nucleus pixels against background, pooled over the split's tiles (not "
                   f"HoVer-Net's mean of per-image Dice, which the table gives beside it); PQ: "
                   f"panoptic quality of the nuclei (matches at IoU > 0.5), the mean over "
                   f"tiles as HoVer-Net. Bands: one standard deviation over seeds, or the "
                   f"run's 95% interval from resampling tiles.")
    by_run = {row["run"]: row for row in study.rows}
    body = []
    for line, points in select.series(list(study.rows), study).items():
        for point in points:
            row = by_run[point.run]
            body.append([line, f"{point.x:g}",
                         *(_text(row, study.split, metric) for metric in TABLE_METRICS),
                         f"`{point.run}`"])
    doc.table(["pretraining", "training tiles",
               *(f"{study.split} {LABELS[metric]} [95% CI]" for metric in TABLE_METRICS),
               "run"], body)
    chosen = select.chosen_runs(study, chosen_names)
    gallery = [(_label(row), rundir.segmentation_overlays(sweep_dir / str(row.get("workdir")),
                                                          "test")[:OVERLAYS_PER_RUN])
               for row in chosen]
    gallery = [(label, files) for label, files in gallery if files]
    if not gallery:
        doc.paragraph("The chosen runs' folders hold no segmentation overlays.")
        return
    png, _ = figures.overlay_gallery(gallery)
    doc.figure(f"{slug}_masks.png", png,
               f"Predicted masks of the chosen runs (per pretraining source, the best-validated "
               f"run at the largest training size) on the first {OVERLAYS_PER_RUN} test tiles: "
               f"each panel is the tile, its annotated nuclei and the predicted ones, coloured "
               f"by class.")
