"""python -m jaxtl.explain end to end on one tiny EyePACS demo run (small_cnn, 32 px): the
files it writes, its pointing game recomputed here from the saved maps and the demo's own box
file, integrated gradients through the same program, what the report reads, and its user
errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from jaxtl.core.errors import UserError
from jaxtl.data import loading
from jaxtl.explain.explainer import Request, explain
from jaxtl.report import explanations
from jaxtl.training import loop as train
from jaxtl.workdir import files as rundir

pytestmark = pytest.mark.slow

IMAGES = 24  # of the training split: the tiny demo's test split has 8 images


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """The tiny run and what `python -m jaxtl.explain --workdir RUN --split train --images 24`
    printed."""
    tmp = tmp_path_factory.mktemp("explain")
    config = tiny_config(tmp, overrides={"demo.arch": "small_cnn", "demo.epochs": 1})
    workdir = tmp / "workdir"
    train.train_and_evaluate(config, workdir)
    assert not (workdir / rundir.LATEST_DIR).exists()  # explained from best/ alone
    command = subprocess.run([sys.executable, "-m", "jaxtl.explain", f"--workdir={workdir}",
                              "--split=train",
                              f"--images={IMAGES}"], capture_output=True, text=True, timeout=300,
                             check=False)
    assert command.returncode == 0, command.stderr[-2000:]
    return workdir, config, command.stdout


def _demo_boxes(root):
    """image id -> boxes (x, y, w, h) in pixels of the stored image, from the sidecar's text."""
    boxes = {}
    with open(root / "DEMO_REGIONS.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["image_id"], []).append(
                tuple(float(row[key]) for key in ("x", "y", "width", "height")))
    return boxes


def _distance(x, y, box):
    bx, by, bw, bh = box
    return np.hypot(max(bx - x, x - (bx + bw), 0.0), max(by - y, y - (by + bh), 0.0))


def test_writes_maps_overlays_gallery_and_the_pointing_game(explained):
    workdir, config, stdout = explained
    folder = workdir / "explain" / "train_gradcam"
    summary = json.loads((folder / "localisation.json").read_text())
    records = loading.load_splits(config).split("train")[:IMAGES]
    saved = np.load(folder / "maps.npz")
    assert list(saved["image_id"]) == [r.image_id for r in records]
    assert saved["maps"].shape == (IMAGES, 1, 4, 4)  # small_cnn's block4 ReLU, before its pool
    assert list(saved["targets"]) == ["predicted"]
    np.testing.assert_array_equal(saved["explained"][:, 0], saved["scores"].argmax(1))
    overlays = sorted((folder / "overlays").glob("*.png"))
    assert len(overlays) == IMAGES
    assert overlays[0].name == f"00000_{records[0].image_id}_predicted.png"
    assert Image.open(overlays[0]).size[0] > 2 * Image.open(overlays[0]).size[1] - 8
    page = (folder / "index.html").read_text()
    assert page.count("<figure>") == IMAGES and all(o.name in page for o in overlays)
    assert summary["stage"] == "block4_act"  # block4 after its ReLU (models.gradcam_feature)
    assert str(folder / "index.html") in stdout and "pointing game" in stdout

    # The pointing game from the maps and the demo's box file: the centre of the maximal cell
    # of a 4 x 4 map, boxes through the centred square crop and the resize to 32 px.
    boxes_of, resolution = _demo_boxes(loading.data_root(config)), config.data.resolution
    tolerance = 15 / 224 * resolution
    hits, random_rates, masses = [], [], []
    for record, cells in zip(records, saved["maps"][:, 0].astype(np.float32)):
        if record.image_id not in boxes_of:
            continue
        width, height = Image.open(record.path).size
        side = min(width, height)
        zoom = resolution / side
        boxes = [((x - (width - side) / 2) * zoom, (y - (height - side) / 2) * zoom, w * zoom,
                  h * zoom) for x, y, w, h in boxes_of[record.image_id]]
        centres = (np.arange(4) + 0.5) * resolution / 4
        near = np.array([[min(_distance(cx, cy, b) for b in boxes) <= tolerance
                          for cx in centres] for cy in centres])
        row, column = np.unravel_index(np.argmax(cells), cells.shape)
        hits.append(bool(near[row, column]) and cells.max() > cells.min())
        random_rates.append(near.mean())
        upsampled = np.asarray(jax.image.resize(cells, (resolution, resolution), "linear"))
        pixel = np.arange(resolution) + 0.5
        inside = np.array([[any(_distance(px, py, b) == 0 for b in boxes) for px in pixel]
                           for py in pixel])
        masses.append(upsampled[inside].sum() / upsampled.sum())
    overall = summary["localisation"]["overall"]
    assert len(hits) >= 5 and overall["images"] == len(hits) and overall["hits"] == sum(hits)
    assert overall["random_map"] == pytest.approx(np.mean(random_rates))
    assert overall["mass_inside"] == pytest.approx(np.mean(masses), rel=5e-3)
    assert summary["tolerance_px"] == pytest.approx(tolerance)

    (read,) = explanations.of_run(workdir, "train")  # what the sweep report shows
    assert read.method == "gradcam" and read.scores == overall
    assert len(read.overlays()) == explanations.OVERLAYS_PER_RUN


def test_integrated_gradients_of_named_images(explained):
    workdir, config, _ = explained
    ids = tuple(r.image_id for r in loading.load_splits(config).split("test")[3:5])
    summary = explain(workdir, Request(method="integrated_gradients", ids=ids, ig_steps=8,
                                       targets=("label",)))
    folder = workdir / "explain" / "test_integrated_gradients"
    saved = np.load(folder / "maps.npz")
    assert tuple(saved["image_id"]) == ids and saved["maps"].shape == (2, 1, 32, 32)
    np.testing.assert_array_equal(saved["explained"][:, 0], saved["labels"])
    assert summary["ig_steps"] == 8
    assert summary["ig_completeness_gap_max"] == pytest.approx(
        np.max(np.abs(saved["completeness_gap"]) / np.abs(saved["score_difference"])))
    assert json.loads((folder / "localisation.json").read_text())["images"] == 2


def test_user_errors(explained):
    # `python -m jaxtl.explain --workdir` of a folder that is no run: exit 2, one line, no
    # traceback (a case of tests/test_malformed_inputs.py, with the other programs' inputs)
    workdir, _, _ = explained
    with pytest.raises(UserError, match="'Grade 9' is not one of the task's classes"):
        explain(workdir, Request(targets=("Grade 9",)))
    with pytest.raises(UserError, match="not in the test split: nobody_left"):
        explain(workdir, Request(ids=("nobody_left",)))
    with pytest.raises(UserError, match="--stage is 'layer4'; small_cnn returns the feature "
                                        "maps stem, block1, block2, block3, block4, block4_act"):
        explain(workdir, Request(stage="layer4"))
    with pytest.raises(UserError, match="^--method rollout: attention rollout needs a Vision "
                                        "Transformer; small_cnn has no attention layers"):
        explain(workdir, Request(method="rollout"))
    with pytest.raises(UserError, match="--images N or --ids, not both"):
        explain(workdir, Request(ids=("nobody_left",), images=2))
