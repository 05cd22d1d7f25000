"""The demo sidecar of known regions: its format, what the demo writers record, and that the
readers ignore it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxtl.core.errors import DataError
from jaxtl.data import demo_store as demo_data
from jaxtl.data.chest import demo as chest_demo
from jaxtl.data.chest import labels as chest_labels
from jaxtl.data.eyepacs import demo as eyepacs_demo
from jaxtl.data.eyepacs import reader as eyepacs_reader
from jaxtl.data.regions import Box


def test_sidecar_round_trip(tmp_path):
    rows = [("10_left", "haemorrhage", Box(1.5, 2.0, 3.25, 4.0)),
            ("10_left", "hard_exudate", Box(0.0, 0.0, 1.0, 1.0)),
            ("a/b.jpg", "Lung Opacity", Box(10.0, 20.0, 30.0, 40.0))]
    demo_data.write_regions(tmp_path, rows)
    read = demo_data.read_regions(tmp_path)
    assert read.of("10_left") == (Box(1.5, 2.0, 3.25, 4.0), Box(0.0, 0.0, 1.0, 1.0))
    assert read.of("10_left", ("hard_exudate",)) == (Box(0.0, 0.0, 1.0, 1.0),)
    assert read.of("a/b.jpg", ("Lung Opacity",)) == (Box(10.0, 20.0, 30.0, 40.0),)
    assert demo_data.read_regions(tmp_path / "none") is None
    (tmp_path / demo_data.REGIONS_FILE).write_text("image,x\n")
    with pytest.raises(DataError, match="header"):
        demo_data.read_regions(tmp_path)


def test_box_helpers():
    assert Box.around([1.0, 3.0], [2.0, 5.0], margin=0.5) == Box(0.5, 1.5, 3.0, 4.0)
    assert Box(-1.0, 2.0, 4.0, 10.0).clipped(10.0, 8.0) == Box(0.0, 2.0, 3.0, 6.0)
    assert Box(11.0, 2.0, 4.0, 1.0).clipped(10.0, 8.0) is None


def _render(grade, inverted, monkeypatch):
    monkeypatch.setattr(eyepacs_demo, "INVERTED_PROB", 1.0 if inverted else 0.0)
    return eyepacs_demo.render_fundus(grade, "left", 96, np.random.default_rng(4))


def test_eyepacs_lesions_are_boxed_where_drawn(monkeypatch):
    """Boxes of a grade-4 image sit on pixels that differ from the same photograph drawn as
    grade 0 (the geometry is drawn first, so both share it); a 180-degree inverted photograph
    has its boxes inverted; grade 0 has none."""
    assert _render(0, False, monkeypatch).lesions == []
    sick, healthy = _render(4, False, monkeypatch), _render(0, False, monkeypatch)
    assert {finding for finding, _ in sick.lesions} <= set(eyepacs_demo.LESION_FINDINGS)
    changed = np.abs(sick.pixels.astype(int) - healthy.pixels.astype(int)).sum(-1) > 30
    height, width = changed.shape
    inside = np.zeros_like(changed)
    for _, box in sick.lesions:
        assert 0 <= box.x and box.x + box.width <= width and box.y + box.height <= height
        inside[int(box.y):int(np.ceil(box.y + box.height)),
               int(box.x):int(np.ceil(box.x + box.width))] = True
    assert changed[inside].mean() > 0.5 and changed[~inside].mean() < 0.02
    inverted = _render(4, True, monkeypatch)
    np.testing.assert_array_equal(inverted.pixels, sick.pixels[::-1, ::-1])
    assert [f for f, _ in inverted.lesions] == [f for f, _ in sick.lesions]
    for (_, flipped), (_, box) in zip(inverted.lesions, sick.lesions):
        assert dataclasses.astuple(flipped) == pytest.approx(
            (width - box.x - box.width, height - box.y - box.height, box.width, box.height))


def test_eyepacs_demo_writes_the_sidecar_and_the_reader_ignores_it(tmp_path):
    root = eyepacs_demo.write_demo_dataset(tmp_path / "demo", num_patients=8, image_size=48,
                                           seed=0)
    known = demo_data.read_regions(root)
    grades = dict(line.split(",") for line in
                  (root / "trainLabels.csv").read_text().splitlines()[1:])
    assert {image for image in known.boxes} == {i for i, g in grades.items() if g != "0"}
    before = eyepacs_reader.load(root, val_fraction=0.2, test_fraction=0.2, split_seed=0,
                                 demo=True, test_set="auto")
    (root / demo_data.REGIONS_FILE).unlink()
    after = eyepacs_reader.load(root, val_fraction=0.2, test_fraction=0.2, split_seed=0,
                                demo=True, test_set="auto")
    assert before == after


@pytest.mark.parametrize("dataset", ["chexpert", "cxr14"])
def test_chest_demo_boxes_carry_the_image_labels(tmp_path, dataset):
    """Every box is filed under a label that its image is positive (or uncertain) for, and each
    positive Lung Opacity image drawn with a localised finding has a box of it."""
    root = chest_demo.write_demo_dataset(dataset, tmp_path / "demo", num_patients=30,
                                         image_size=64, seed=1)
    known = demo_data.read_regions(root)
    assert known.boxes
    positives = _positive_labels(dataset, root)
    for image_id, by_label in known.boxes.items():
        assert set(by_label) <= positives[image_id], image_id
        for boxes in by_label.values():
            assert all(0 <= b.x and b.x + b.width <= 64 and b.y + b.height <= 64 for b in boxes)
    vocabulary = chest_labels.CHEXPERT_LABELS if dataset == "chexpert" else \
        chest_labels.CXR14_LABELS
    assert known.findings <= set(vocabulary)


def _positive_labels(dataset, root):
    """image id -> labels marked positive or uncertain in the demo's label files."""
    found = {}
    if dataset == "chexpert":
        for split in ("train", "valid"):
            header, *rows = (root / f"{split}.csv").read_text().splitlines()
            names = header.split(",")[5:]
            for row in rows:
                cells = row.split(",")
                image_id = cells[0].split("/", 1)[1]
                found[image_id] = {n for n, c in zip(names, cells[5:]) if c in ("1.0", "-1.0")}
        return found
    for row in (root / "Data_Entry_2017.csv").read_text().splitlines()[1:]:
        cells = row.split(",")
        found[cells[0]] = set(cells[1].split("|"))
    return found
