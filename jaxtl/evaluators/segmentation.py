"""The evaluator of segmentation tasks: every tile whole, once, by sliding windows; then the
metrics.

Each tile of the split (the dataset's `SegmentationData.tile`: image, true pixel classes, true
instances) goes to the device as uint8, is normalised there (the run's evaluation
normalisation, `data.mean` / `data.std`) and predicted whole
(`inference.make_tile_predictor`: windows of `data.resolution` px overlapping by
`seg.window_overlap`); a pixel's class is the most probable one, nuclei are made from the
foreground by `seg.instances`, and `jaxtl.metrics.segmentation` scores them (pixel Dice and
IoU per class and for nuclei pooled over the tiles; HoVer-Net's per-tile nuclei Dice, AJI and PQ
averaged over the tiles; tile-resampled intervals with `intervals`). A tile is one of the
dataset's images, whole (never cut into windows for scoring), so the means over tiles are
HoVer-Net's means over images. Every host scores every tile (the tiles are few; the result is
the same everywhere).

`SegmentationEvaluator.final_results` also keeps, on the first host, each split's predicted
classes per tile (`rundir.SEGMENTATION_FILE`, uint8) and draws the first `seg.overlay_tiles`
test tiles with their true and predicted classes, the panels titled and the classes' colours
keyed (`rundir.SEGMENTATION_OVERLAYS_DIR`), which the reports show.
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxtl.core import atomic, progress
from jaxtl.core.tasks import SEGMENTATION
from jaxtl.data.records import Record
from jaxtl.engine.build import Run
from jaxtl.engine.steps import TrainState
from jaxtl.evaluators.sliding_window import make_tile_predictor
from jaxtl.metrics import segmentation as metrics
from jaxtl.workdir import files as rundir


def _predictor(run: Run):
    """The run's tile predictor, compiled once per run."""
    return run.compiled("tile_predictor", lambda: make_tile_predictor(
        lambda variables, images: run.model.apply(
            variables, run.eval_transform.normalisation(images), train=False)[0],
        window=run.config.data.resolution, overlap=run.config.seg.window_overlap,
        batch=run.config.eval.batch_size))


def predict_tiles(run: Run, state: TrainState, records: Sequence[Record]
                  ) -> Iterator[tuple[Record, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(record, image uint8, true classes, true instances, predicted classes) per tile."""
    config = run.config
    read = run.spec.segmentation.tile
    predict = _predictor(run)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    for record in progress.track(records, total=len(records), unit="tile", desc="segment",
                                 leave=False, mininterval=5.0,
                                 disable=jax.process_index() != 0 or len(records) < 10):
        image, classes, instances = read(config, record)
        probs = predict(variables, image)  # uint8: normalised inside the jitted predictor
        yield record, image, classes, instances, probs.argmax(axis=-1).astype(np.uint8)


def _scored(run: Run, record: Record, classes: np.ndarray, instances: np.ndarray,
            predicted: np.ndarray) -> metrics.TileScore:
    return metrics.score_tile(record.image_id, classes, instances, predicted,
                              run.splits.task.num_outputs, run.config.seg.instances)


def _metrics(run: Run, tiles: Sequence[metrics.TileScore], intervals: bool) -> dict[str, Any]:
    config = run.config
    return metrics.split_metrics(
        tiles, run.splits.task.names,
        bootstrap_samples=config.eval.bootstrap_samples if intervals else 0,
        seed=config.eval.bootstrap_seed)


# Class colours of the overlays (background none): up to 7 foreground classes.
PALETTE = np.array([[0, 0, 0], [255, 215, 0], [0, 200, 255], [50, 220, 50], [255, 60, 60],
                    [255, 130, 0], [200, 90, 255], [255, 255, 255]], np.float32)


PANEL_TITLES = ("image", "annotated", "predicted")
KEY_SWATCH = 0.8  # a key entry's colour square, as a fraction of the text height


def overlay(image: np.ndarray, true: np.ndarray, predicted: np.ndarray,
            names: Sequence[str]) -> np.ndarray:
    """(H', 3 W, 3) uint8: the tile, its true classes over it and the predicted classes over
    it, each panel titled above, with a key below naming the colour of each foreground class
    (`names`: the task's classes, background first)."""

    def painted(classes: np.ndarray) -> np.ndarray:
        colour = PALETTE[np.minimum(classes, len(PALETTE) - 1)]
        alpha = np.where(classes > 0, 0.55, 0.0)[..., None]
        return (image * (1 - alpha) + colour * alpha).astype(np.uint8)

    panels = np.concatenate([image, painted(true), painted(predicted)], axis=1)
    return _titled_and_keyed(panels, image.shape[1], names)


def _titled_and_keyed(panels: np.ndarray, panel_width: int,
                      names: Sequence[str]) -> np.ndarray:
    size = max(10, panel_width // 14)
    font = ImageFont.load_default(size)
    pad, line = size // 3, size + 2 * (size // 3)
    width = panels.shape[1]
    entries = [(name, tuple(int(c) for c in PALETTE[min(index, len(PALETTE) - 1)]))
               for index, name in enumerate(names) if index > 0]
    # key entries left to right, wrapped to the panels' width
    rows: list[list[tuple[int, str, tuple]]] = [[]]
    x = pad
    for name, colour in entries:
        entry = int(size * KEY_SWATCH) + pad + int(font.getlength(name)) + 2 * pad
        if rows[-1] and x + entry > width:
            rows.append([])
            x = pad
        rows[-1].append((x, name, colour))
        x += entry
    canvas = Image.new("RGB", (width, line + panels.shape[0] + line * len(rows)), "white")
    canvas.paste(Image.fromarray(panels), (0, line))
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(PANEL_TITLES):
        draw.text((column * panel_width + pad, pad), title, fill="black", font=font)
    top = line + panels.shape[0]
    for row, placed in enumerate(rows):
        y = top + row * line + pad
        for x, name, colour in placed:
            swatch = int(size * KEY_SWATCH)
            draw.rectangle((x, y, x + swatch, y + swatch), fill=colour, outline="black")
            draw.text((x + swatch + pad, y), name, fill="black", font=font)
    return np.asarray(canvas)


class SegmentationEvaluator:
    """Scores segmentation tasks tile by tile."""

    kinds = (SEGMENTATION,)

    def score_split(self, run: Run, state: TrainState, records: Sequence[Record], *,
                    intervals: bool = False) -> dict[str, Any]:
        """The task's metrics on a split's whole tiles; with `intervals`, bootstrap CIs
        resampled by tile."""
        tiles = [_scored(run, record, classes, instances, predicted) for
                 record, _, classes, instances, predicted in predict_tiles(run, state, records)]
        return _metrics(run, tiles, intervals)

    def final_results(self, run: Run, state: TrainState,
                      workdir: pathlib.Path) -> dict[str, Any]:
        """`val` and `test` metrics with intervals; the first host saves the predicted classes
        and the test overlays."""
        writer = jax.process_index() == 0
        results: dict[str, Any] = {}
        for split in ("val", "test"):
            records = run.splits.split(split)
            if not records:
                results[split] = None
                continue
            tiles, masks = [], {}
            for index, (record, image, classes, instances, predicted) in enumerate(
                    predict_tiles(run, state, records)):
                tiles.append(_scored(run, record, classes, instances, predicted))
                masks[record.image_id] = predicted
                if writer and split == "test" and index < run.config.seg.overlay_tiles:
                    folder = workdir / rundir.SEGMENTATION_OVERLAYS_DIR / split
                    png = _png(overlay(image, classes, predicted,
                                               run.splits.task.names))
                    atomic.write_bytes(folder / f"{record.image_id}.png", png)
            if writer:
                atomic.save_npz(rundir.segmentation_file(workdir, split), compressed=True, **masks)
            results[split] = _metrics(run, tiles, intervals=True)
        results["operating_points"] = None
        results["label_policies"] = dict(run.splits.label_policies)
        return results


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
