"""The EyePACS reader on a fixture in the real Kaggle layout."""

from __future__ import annotations

import pytest
from layouts.eyepacs import eyepacs_labels, write_eyepacs

from jaxtl.core.errors import DataError
from jaxtl.data.eyepacs import reader as eyepacs


def test_reads_every_row_with_label_patient_and_path(eyepacs_root):
    records = eyepacs.read_labels(eyepacs_root)
    expected = eyepacs_labels(30)
    assert [r.image_id for r in records] == list(expected)
    assert all(r.label == expected[r.image_id] for r in records)
    assert records[0].patient == "10" and records[1].patient == "10"
    assert records[0].path == str(eyepacs_root / "train" / "10_left.jpeg")


def test_both_eyes_of_a_patient_share_a_split_and_splits_cover_everything(eyepacs_root):
    splits = eyepacs.load(eyepacs_root, val_fraction=0.2, test_fraction=0.1, split_seed=3)
    patients = {name: {r.patient for r in splits.split(name)} for name in ("train", "val", "test")}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert (len(patients["train"]), len(patients["val"]), len(patients["test"])) == (21, 6, 3)
    assert sum(len(splits.split(n)) for n in ("train", "val", "test")) == 60
    for name in ("train", "val", "test"):  # each patient contributes both eyes to its split
        assert len(splits.split(name)) == 2 * len(patients[name])


def test_split_depends_only_on_the_seed(eyepacs_root):
    def ids(seed):
        splits = eyepacs.load(eyepacs_root, val_fraction=0.2, test_fraction=0.1, split_seed=seed)
        return [r.image_id for r in splits.val]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)


def test_missing_root_says_what_to_set(tmp_path):
    with pytest.raises(DataError, match="does not exist; set --config.data.root"):
        eyepacs.read_labels(tmp_path / "nowhere")


def test_missing_labels_file_names_the_file(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="trainLabels.csv not found"):
        eyepacs.read_labels(tmp_path)


def test_wrong_header_is_reported(tmp_path):
    root = write_eyepacs(tmp_path / "e", {"1_left": 0})
    (root / "trainLabels.csv").write_text("name,grade\n1_left,0\n")
    with pytest.raises(DataError, match="expected the header 'image,level'"):
        eyepacs.read_labels(root)


def test_bad_grade_names_line_and_image(tmp_path):
    root = write_eyepacs(tmp_path / "e", {"1_left": 0, "1_right": 1})
    (root / "trainLabels.csv").write_text("image,level\n1_left,0\n1_right,7\n")
    with pytest.raises(DataError, match="line 3: level '7' of 1_right"):
        eyepacs.read_labels(root)


def test_bad_image_id_is_reported(tmp_path):
    root = write_eyepacs(tmp_path / "e", {"1_left": 0})
    (root / "trainLabels.csv").write_text("image,level\n1_middle,0\n")
    with pytest.raises(DataError, match="'1_middle' is not of the form"):
        eyepacs.read_labels(root)


def test_missing_images_are_counted_not_skipped(tmp_path):
    root = write_eyepacs(tmp_path / "e", {"1_left": 0, "1_right": 1, "2_left": 2})
    (root / "train" / "1_right.jpeg").unlink()
    with pytest.raises(DataError, match="1 of 3 images listed .* are missing .*1_right.jpeg"):
        eyepacs.read_labels(root)


def test_crlf_line_ends_and_blank_trailing_lines_are_accepted(tmp_path):
    root = write_eyepacs(tmp_path / "e", {"1_left": 3, "1_right": 4})
    (root / "trainLabels.csv").write_bytes(b"image,level\r\n1_left,3\r\n1_right,4\r\n\r\n")
    assert [r.label for r in eyepacs.read_labels(root)] == [3, 4]
