"""ChestX-ray14 reader: the 2017 file's quirks, the v2020 revision and both image layouts."""

from __future__ import annotations

import math

import pytest
from layouts.chest import CXR14_ROWS, write_cxr14

from jaxtl.core.errors import DataError
from jaxtl.data.chest import cxr14


@pytest.mark.parametrize("version", ["2017", "2020"])
def test_reads_findings_patients_and_ages(tmp_path, version):
    root = write_cxr14(tmp_path / "cxr14", version=version, images=False)
    table = cxr14.read(root, official_split=True)
    assert table.image_ids == [row[0] for row in CXR14_ROWS]
    assert table.patients == ["1", "1", "2", "3", "4", "5", "6", "7"]
    assert table.labels["Cardiomegaly"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert table.labels["Emphysema"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert table.labels["Pleural_Thickening"][4] == 1 and table.labels["Mass"][4] == 1
    assert table.labels["No Finding"].tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    assert table.view[:3] == ["PA", "PA", "AP"]
    assert table.age[0] == 58.0
    if version == "2017":
        assert table.age[3] == pytest.approx(0.5)  # "006M": six months
    assert table.source == ["train_val", "train_val", "test", "train_val", "test",
                            "train_val", "train_val", "train_val"]


def test_bracketed_headers_span_two_cells():
    header = ["Image Index", "OriginalImage[Width", "Height]", "View Position", ""]
    assert cxr14.cell_columns(header) == {"Image Index": 0, "OriginalImage[Width,Height]": 1,
                                          "View Position": 3}


@pytest.mark.parametrize("text,years", [("058Y", 58.0), ("58", 58.0), ("012M", 1.0),
                                        ("", math.nan)])
def test_ages(text, years):
    assert cxr14.parse_age(text) == pytest.approx(years, nan_ok=True)


def test_missing_lists_and_unknown_findings_are_clear_errors(tmp_path):
    root = write_cxr14(tmp_path / "a", images=False)
    (root / "test_list.txt").unlink()
    with pytest.raises(DataError, match="test_list.txt not found.*chest.split=patient"):
        cxr14.read(root, official_split=True)
    assert len(cxr14.read(root, official_split=False)) == len(CXR14_ROWS)
    text = (root / "Data_Entry_2017.csv").read_bytes().replace(b"Hernia", b"Hernai")
    (root / "Data_Entry_2017.csv").write_bytes(text)
    with pytest.raises(DataError, match="unknown finding 'Hernai'"):
        cxr14.read(root, official_split=False)
