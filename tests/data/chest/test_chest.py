"""Chest X-ray policies, tasks, view filters and splits against hand-computed expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import config_of
from layouts.chest import chexpert_row, write_chexpert, write_cxr14

from jaxtl.config import validation as configuration
from jaxtl.core import tasks
from jaxtl.core.errors import ConfigError, DataError
from jaxtl.data import loading
from jaxtl.data.chest import labels as chest_labels

NAN = math.nan
RAW = [1.0, 0.0, -1.0, NAN]


@pytest.mark.parametrize("policy,empty,expected", [
    ("ignore", "negative", [1, 0, -1, 0]),
    ("zeros", "negative", [1, 0, 0, 0]),
    ("ones", "negative", [1, 0, 1, 0]),
    ("multiclass", "negative", [1, 0, 2, 0]),
    ("ignore", "mask", [1, 0, -1, -1]),
    ("ones", "mask", [1, 0, 1, -1]),
])
def test_uncertainty_and_empty_cell_policies(policy, empty, expected):
    assert chest_labels.encode(RAW, "Edema", policy, empty).tolist() == expected


def test_no_finding_empty_cells_are_always_negative():
    assert chest_labels.encode([1.0, NAN], "No Finding", "ignore", "mask").tolist() == [1, 0]


def test_named_tasks():
    assert chest_labels.task_labels("chexpert", "lung_opacity") == ("Lung Opacity",)
    assert chest_labels.task_labels("chexpert", "competition5") == (
        "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    assert len(chest_labels.task_labels("chexpert", "all")) == 14
    assert chest_labels.task_labels("cxr14", "all")[-1] == "Hernia"
    assert chest_labels.task_labels("chexpert", "Edema, Fracture") == ("Edema", "Fracture")
    with pytest.raises(ConfigError, match="'Hernia' is not a chexpert label"):
        chest_labels.task_labels("chexpert", "Hernia")


def test_hierarchical_task_has_the_documented_parents():
    task, _ = chest_labels.build_task("chexpert", "hierarchical", "ones", {})
    parent = {name: task.names[p] if p >= 0 else None for name, p in zip(task.names,
                                                                          task.parents)}
    assert parent == {"Lung Opacity": None, "Edema": "Lung Opacity",
                      "Consolidation": "Lung Opacity", "Pneumonia": "Consolidation",
                      "Lung Lesion": "Lung Opacity", "Atelectasis": "Lung Opacity",
                      "Enlarged Cardiomediastinum": None,
                      "Cardiomegaly": "Enlarged Cardiomediastinum"}
    with pytest.raises(ConfigError, match="binary"):
        chest_labels.build_task("chexpert", "hierarchical", "multiclass", {})


def test_per_label_policies_make_three_way_labels():
    task, policies = chest_labels.build_task(
        "chexpert", "competition5", "zeros",
        chest_labels.parse_per_label("Atelectasis=ones, Cardiomegaly=multiclass"))
    assert policies == ("ones", "multiclass", "zeros", "zeros", "zeros")
    assert task.three_way == (False, True, False, False, False) and task.num_outputs == 7


def test_cxr14_labels_in_chexpert_terms_follow_the_mapping():
    columns = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])]
    assert chest_labels.merged(columns).tolist() == [1.0, 0.0, 1.0]
    assert chest_labels.CXR14_AS_CHEXPERT["Pleural Effusion"] == ("Effusion",)
    assert set(chest_labels.CXR14_AS_CHEXPERT["Lung Lesion"]) == {"Mass", "Nodule"}


def chexpert_download(tmp_path, patients=40):
    rows = []
    for p in range(1, patients + 1):
        for study in (1, 2):
            value = ["1.0", "0.0", "-1.0", ""][(p + study) % 4]
            rows.append(chexpert_row(p, study, "Frontal", {"Lung Opacity": value},
                                     ap_pa="PA" if p % 2 else "AP"))
        rows.append(chexpert_row(p, 1, "Lateral", {"Lung Opacity": "1.0"}, number=2))
    valid = [chexpert_row(1000 + p, 1, "Frontal", {"Lung Opacity": str(float(p % 2))},
                          split="valid") for p in range(6)]
    return write_chexpert(tmp_path / "chexpert", rows, valid)


def config_for(name, root, **chest_settings):
    config = config_of(name)
    config.data.root = str(root)
    for key, value in chest_settings.items():
        config.chest[key] = value
    configuration.validate(config)
    return config


def all_records(splits):
    return [r for name in ("train", "val", "test") for r in splits.split(name)]


def test_views_and_patient_split_never_share_patients(tmp_path):
    root = chexpert_download(tmp_path)
    splits = loading.load_splits(config_for("chexpert", root))
    records = all_records(splits)
    assert len(records) == 80 + 6  # frontal only; valid.csv joins the patient split
    assert all("frontal" in r.image_id for r in records)
    patients = [{r.patient for r in splits.split(n)} for n in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2]
                or patients[1] & patients[2])
    assert len(patients[2]) == round(0.2 * 46) and len(patients[1]) == round(0.1 * 46)
    ap_only = loading.load_splits(config_for("chexpert", root, view="ap"))
    assert len(all_records(ap_only)) == 46  # even patients x 2 studies + the 6 AP valid rows
    pa = loading.load_splits(config_for("chexpert", root, view="pa"))
    assert len(all_records(pa)) == 40


def test_official_split_tests_on_valid_csv(tmp_path):
    root = chexpert_download(tmp_path)
    splits = loading.load_splits(config_for("chexpert", root, split="official"))
    assert sorted(r.patient for r in splits.test) == [f"patient{1000 + p:05d}" for p in range(6)]
    assert {r.label for r in splits.test} == {(0,), (1,)}


def test_split_is_seeded(tmp_path):
    root = chexpert_download(tmp_path)
    config = config_for("chexpert", root)
    first = [r.image_id for r in loading.load_splits(config).test]
    assert first == [r.image_id for r in loading.load_splits(config).test]
    config.data.split_seed = 1
    assert first != [r.image_id for r in loading.load_splits(config).test]


def test_u_ignore_masks_uncertain_and_labels_follow_the_csv(tmp_path):
    root = chexpert_download(tmp_path)
    splits = loading.load_splits(config_for("chexpert", root, empty="mask"))
    by_id = {r.image_id: r.label for r in all_records(splits)}
    assert by_id["train/patient00001/study1/view1_frontal.jpg"] == (tasks.MASKED,)  # -1.0
    assert by_id["train/patient00001/study2/view1_frontal.jpg"] == (tasks.MASKED,)  # empty
    assert by_id["train/patient00002/study1/view1_frontal.jpg"] == (tasks.MASKED,)  # empty
    assert by_id["train/patient00002/study2/view1_frontal.jpg"] == (tasks.POSITIVE,)
    assert by_id["train/patient00003/study2/view1_frontal.jpg"] == (tasks.NEGATIVE,)
    assert by_id["train/patient00004/study1/view1_frontal.jpg"] == (tasks.NEGATIVE,)


def test_train_per_class_takes_n_positives_and_n_negatives(tmp_path):
    root = chexpert_download(tmp_path)
    config = config_for("chexpert", root)
    config.data.train_per_class = 5
    labels = [r.label for r in loading.load_splits(config).train]
    assert labels.count((1,)) == 5 and labels.count((0,)) == 5 and len(labels) == 10


@pytest.mark.parametrize("nested", [False, True])
def test_cxr14_both_image_layouts_and_official_split(tmp_path, nested):
    root = write_cxr14(tmp_path / "cxr14", nested=nested)
    config = config_for("cxr14", root, split="official")
    config.data.task = "Cardiomegaly,Lung Opacity,Pleural Effusion"
    config.data.val_fraction = 0.2
    splits = loading.load_splits(config)
    assert {r.patient for r in splits.test} == {"2", "4"}
    by_id = {r.image_id: r for r in all_records(splits)}
    assert by_id["00000003_000.png"].label == (0, 1, 0)  # Infiltration|Nodule -> opacity
    assert by_id["00000004_000.png"].label == (0, 1, 1)  # Effusion|Mass
    assert by_id["00000005_000.png"].label == (0, 0, 0)  # Hernia alone
    folder = "images_002/images" if nested else "images"
    assert by_id["00000004_000.png"].path.endswith(f"{folder}/00000004_000.png")


def test_missing_images_are_counted_in_one_error(tmp_path):
    root = write_cxr14(tmp_path / "cxr14")
    (root / "images" / "00000005_000.png").unlink()
    with pytest.raises(DataError, match="1 of the 8 cxr14 images .* 00000005_000.png"):
        loading.load_splits(config_for("cxr14", root))


def test_bad_chest_settings_are_config_errors():
    config = config_of("chexpert")
    config.chest.uncertain = "maybe"
    config.chest.uncertain_per_label = "Edema=sometimes"
    config.data.task = "Hernia"
    with pytest.raises(ConfigError) as error:
        configuration.validate(config)
    message = str(error.value)
    assert "config.chest.uncertain is 'maybe'" in message
    assert "Edema=sometimes" in message and "'Hernia' is not a chexpert label" in message


@pytest.mark.parametrize("channels", [1, 3])
def test_grey_radiographs_load_as_one_channel_or_replicated_to_three(tmp_path, channels):
    from layouts.chest import write_image

    from jaxtl.data.transforms import ImageTransform

    write_image(tmp_path / "x.jpg", size=40)
    transform = ImageTransform(resolution=16, channels=channels, mean=(0.5,) * channels,
                               std=(0.25,) * channels)
    pixels = transform.pixels(str(tmp_path / "x.jpg"), None)
    assert pixels.shape == (16, 16, channels)
    if channels == 3:
        assert np.array_equal(pixels[..., 0], pixels[..., 1])
        assert np.array_equal(pixels[..., 1], pixels[..., 2])


def test_evaluation_labels_do_not_depend_on_the_training_policy(tmp_path):
    root = chexpert_download(tmp_path)
    loaded = {policy: loading.load_splits(config_for("chexpert", root, uncertain=policy))
              for policy in chest_labels.POLICIES}
    raw = {f"train/patient{p:05d}/study{s}/view1_frontal.jpg": RAW[(p + s) % 4]
           for p in range(1, 41) for s in (1, 2)}
    for policy, splits in loaded.items():
        for split in ("val", "test"):  # uncertain cells masked (chest.eval_uncertain=mask)
            assert [r.label for r in splits.split(split)] == \
                [r.label for r in loaded["ignore"].split(split)]
            assert all(r.label == (tasks.MASKED,) for r in splits.split(split)
                       if raw.get(r.image_id) == -1.0)
        uncertain_train = [r.label for r in splits.train if raw.get(r.image_id) == -1.0]
        expected = {"ignore": tasks.MASKED, "zeros": tasks.NEGATIVE, "ones": tasks.POSITIVE,
                    "multiclass": tasks.UNCERTAIN}[policy]
        assert uncertain_train and set(uncertain_train) == {(expected,)}
        assert splits.label_policies["eval_uncertain"] == "mask"
    scored_as_ones = loading.load_splits(config_for("chexpert", root, eval_uncertain="ones"))
    assert all(r.label == (tasks.POSITIVE,) for r in scored_as_ones.test
               if raw.get(r.image_id) == -1.0)
