"""python -m jaxtl.explain --method rollout on a tiny trained ViT (timm's test_vit on the EyePACS
demo at 64 px: a 4 x 4 patch grid): maps on the patch grid, the same for every target, the
gallery and the pointing game, recomputed here from the saved maps and the demo's box file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from jaxtl.data import loading
from jaxtl.training import loop as train

pytestmark = pytest.mark.slow

IMAGES, RESOLUTION, GRID = 16, 64, 4


def _boxes(root, record, resolution):
    """The demo's boxes of `record`, in input pixels (centred square crop, resize)."""
    with open(root / "DEMO_REGIONS.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["image_id"] == record.image_id]
    width, height = Image.open(record.path).size
    side = min(width, height)
    zoom = resolution / side
    return [((float(r["x"]) - (width - side) / 2) * zoom, (float(r["y"]) - (height - side) / 2)
             * zoom, float(r["width"]) * zoom, float(r["height"]) * zoom) for r in rows]


def _distance(x, y, box):
    bx, by, bw, bh = box
    return np.hypot(max(bx - x, x - (bx + bw), 0.0), max(by - y, y - (by + bh), 0.0))


def test_rollout_of_a_trained_vit_gives_patch_grid_maps_and_the_pointing_game(tmp_path):
    config = tiny_config(tmp_path, "eyepacs", {
        "model.arch": "test_vit", "demo.arch": "test_vit", "demo.resolution": RESOLUTION,
        "data.resolution": RESOLUTION, "demo.epochs": 1})
    workdir = tmp_path / "run"
    train.train_and_evaluate(config, workdir)
    command = subprocess.run([sys.executable, "-m", "jaxtl.explain", f"--workdir={workdir}",
                              "--split=train", f"--images={IMAGES}", "--method=rollout"],
                             capture_output=True, text=True, timeout=300)
    assert command.returncode == 0, command.stderr[-2000:]
    folder = workdir / "explain" / "train_rollout"
    summary = json.loads((folder / "localisation.json").read_text())
    assert summary["rollout"] == "class token" and summary["map_size"] == [GRID, GRID]
    saved = np.load(folder / "maps.npz")
    maps = saved["maps"].astype(np.float32)
    assert maps.shape == (IMAGES, 1, GRID, GRID)
    # the class token's row of a product of row-stochastic matrices, its patch columns: a
    # positive part of a distribution (the class token keeps the rest)
    assert (maps > 0).all() and (maps.sum(axis=(2, 3)) < 1 + 1e-3).all()
    page = (folder / "index.html").read_text()
    assert page.count("<figure>") == IMAGES and "attention rollout" in page
    assert len(list((folder / "overlays").glob("*.png"))) == IMAGES

    root = loading.data_root(config)
    records = loading.load_splits(config).split("train")[:IMAGES]
    tolerance = 15 / 224 * RESOLUTION
    centres = (np.arange(GRID) + 0.5) * RESOLUTION / GRID
    hits, rates = [], []
    for record, cells in zip(records, maps[:, 0]):
        boxes = _boxes(root, record, RESOLUTION)
        if not boxes:
            continue
        near = np.array([[min(_distance(cx, cy, b) for b in boxes) <= tolerance
                          for cx in centres] for cy in centres])
        row, column = np.unravel_index(np.argmax(cells), cells.shape)
        hits.append(bool(near[row, column]))
        rates.append(near.mean())
    overall = summary["localisation"]["overall"]
    assert len(hits) >= 3 and overall["images"] == len(hits) and overall["hits"] == sum(hits)
    assert overall["random_map"] == pytest.approx(np.mean(rates))
