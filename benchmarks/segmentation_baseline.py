"""Trivial baselines of a finished segmentation run, on the same test tiles.

    python benchmarks/segmentation_baseline.py runs/seg-demo

- all background: nuclei Dice 0 (no true positive), PQ 0 wherever a tile has nuclei;
- a colour threshold: a pixel is a nucleus when its hematoxylin optical density (the
  Ruifrok-Johnston deconvolution of jaxtl/data/consep/segmentation.py) is above a threshold,
  the threshold chosen on the run's *training* tiles to maximise their pooled nuclei Dice (so
  the baseline sees as much annotation as the run), then applied to the test tiles; instances as
  the run makes them (`seg.instances`).
Prints the run's own test nuclei Dice, AJI and PQ (results.json) beside them.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from jaxtl.data import loading, registry
from jaxtl.data.consep.segmentation import HED_FROM_RGB
from jaxtl.metrics import segmentation as seg
from jaxtl.workdir import files as rundir

THRESHOLDS = np.linspace(0.0, 1.5, 61)


def hematoxylin(image: np.ndarray) -> np.ndarray:
    rgb = np.maximum(image.astype(np.float64) / 255.0, 1e-6)
    return ((-np.log(rgb)) @ HED_FROM_RGB)[..., 0]


def main(workdir: pathlib.Path) -> None:
    config = rundir.read_config(workdir)
    splits = loading.load_splits(config)
    tile = registry.get(config.dataset).segmentation.tile
    train = [tile(config, r) for r in splits.train]
    counts = np.zeros((len(THRESHOLDS), 3))
    for image, classes, _ in train:
        h = hematoxylin(image)
        for i, threshold in enumerate(THRESHOLDS):
            counts[i] += seg.pixel_counts(classes > 0, h > threshold, 2)[1]
    dice = 2 * counts[:, 0] / np.maximum(2 * counts[:, 0] + counts[:, 1] + counts[:, 2], 1)
    best = float(THRESHOLDS[int(np.argmax(dice))])
    scored = {"all background": [], f"hematoxylin > {best:.3f}": []}
    for record in splits.test:
        image, classes, instances = tile(config, record)
        empty = np.zeros_like(classes)
        scored["all background"].append(seg.score_tile(
            record.image_id, classes > 0, instances, empty, 2, config.seg.instances))
        scored[f"hematoxylin > {best:.3f}"].append(seg.score_tile(
            record.image_id, classes > 0, instances, (hematoxylin(image) > best).astype(int), 2,
            config.seg.instances))
    results = json.loads((workdir / rundir.RESULTS_FILE).read_text())["test"]
    print(f"{len(splits.test)} test tiles; threshold chosen on {len(train)} training tiles")
    print(f"{'method':28s} dice_nuclei    aji     pq")
    for name, tiles in scored.items():
        m = seg.split_metrics(tiles, ("background", "nucleus"))
        print(f"{name:28s} {m['dice_nuclei']:.3f}      {m['aji'] or 0:.3f}  {m['pq'] or 0:.3f}")
    print(f"{'the run (results.json)':28s} {results['dice_nuclei']:.3f}      "
          f"{results['aji']:.3f}  {results['pq']:.3f}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
