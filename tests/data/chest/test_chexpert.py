"""CheXpert reader on hand-written CSVs in the download's layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
from layouts.chest import CHEXPERT_HEADER, chexpert_row, write_chexpert

from jaxtl.core.errors import DataError
from jaxtl.data.chest import chexpert


def test_reads_paths_patients_views_and_raw_values(tmp_path):
    root = write_chexpert(tmp_path / "CheXpert-v1.0-small", [
        chexpert_row(1, 1, "Frontal", {"Edema": "1.0", "Lung Opacity": "-1.0",
                                       "Cardiomegaly": "0.0"}),
        chexpert_row(1, 1, "Lateral", {"No Finding": "1.0"}, number=2),
    ], [chexpert_row(64541, 1, "Frontal", {"Edema": "0.0"}, split="valid", ap_pa="PA")],
        images=False)
    train, valid = chexpert.read(root)
    assert train.image_ids == ["train/patient00001/study1/view1_frontal.jpg",
                               "train/patient00001/study1/view2_lateral.jpg"]
    assert train.paths[0] == str(root / "train/patient00001/study1/view1_frontal.jpg")
    assert train.patients == ["patient00001", "patient00001"]
    assert train.studies == ["patient00001/study1"] * 2
    assert train.frontal.tolist() == [True, False] and train.view == ["AP", ""]
    assert train.labels["Edema"][0] == 1.0 and train.labels["Lung Opacity"][0] == -1.0
    assert train.labels["Cardiomegaly"][0] == 0.0 and math.isnan(train.labels["Edema"][1])
    assert valid.patients == ["patient64541"] and valid.view == ["PA"]


def test_the_full_release_folder_name_is_stripped_too(tmp_path):
    row = chexpert_row(7, 2, "Frontal", {}).replace("CheXpert-v1.0-small", "CheXpert-v1.0")
    root = write_chexpert(tmp_path / "x", [row], [], images=False)
    train, _ = chexpert.read(root)
    assert train.image_ids == ["train/patient00007/study2/view1_frontal.jpg"]


def test_a_wrong_header_or_cell_is_one_clear_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "train.csv").write_text("Path,Sex\nx,y\n")
    (root / "valid.csv").write_text(CHEXPERT_HEADER + "\n")
    with pytest.raises(DataError, match="expected the CheXpert header"):
        chexpert.read(root)
    row = chexpert_row(1, 1, "Frontal", {"Edema": "yes"})
    write_chexpert(tmp_path / "cell", [row], [], images=False)
    with pytest.raises(DataError, match="'Edema' holds 'yes'"):
        chexpert.read(tmp_path / "cell")
    root = write_chexpert(tmp_path / "no-valid", [chexpert_row(1, 1, "Frontal", {})], [],
                          images=False)
    (root / "valid.csv").unlink()
    with pytest.raises(DataError, match="valid.csv not found"):
        chexpert.read(root)


def test_reads_223k_rows_without_touching_images(tmp_path):
    rows = [chexpert_row(p, 1, "Frontal", {"Edema": "1.0", "Fracture": "-1.0"})
            for p in range(1, 20001)]
    root = write_chexpert(tmp_path / "big", rows, [], images=False)
    train, _ = chexpert.read(root)
    assert len(train) == 20000 and np.all(train.labels["Edema"] == 1.0)
