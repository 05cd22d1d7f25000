"""EyePACS extras: the Kaggle test set with its Usage column, scored per Usage; the selectable
Graham preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config
from layouts.eyepacs import eyepacs_labels, write_eyepacs
from PIL import Image

from jaxtl.core.errors import DataError
from jaxtl.data import registry
from jaxtl.data.eyepacs import reader as eyepacs
from jaxtl.data.eyepacs.graham import GrahamPreprocess
from jaxtl.training import loop as train


def add_test_set(root, usages: dict[str, tuple[int, str]], missing: tuple[str, ...] = ()):
    """retinopathy_solution.csv (image,level,Usage) and test/<image>.jpeg, as published."""
    (root / "test").mkdir()
    lines = ["image,level,Usage"] + [f"{image},{level},{usage}"
                                     for image, (level, usage) in usages.items()]
    (root / "retinopathy_solution.csv").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(1)
    for image in usages:
        if image not in missing:
            pixels = rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "test" / f"{image}.jpeg")
    return root


def kaggle_usages(count=16):
    usage = {}
    for patient in range(1, count // 2 + 1):
        for eye in ("left", "right"):
            usage[f"{patient}_{eye}"] = (patient % 5, "Public" if patient % 3 == 0 else "Private")
    return usage


@pytest.fixture
def kaggle_root(tmp_path):
    return add_test_set(write_eyepacs(tmp_path / "eyepacs", eyepacs_labels(30)), kaggle_usages())


def test_kaggle_test_set_is_the_test_split_with_usage_subsets(kaggle_root):
    splits = eyepacs.load(kaggle_root, val_fraction=0.2, test_fraction=0.3, split_seed=0,
                          test_set="auto")
    usage = kaggle_usages()
    assert [r.image_id for r in splits.test] == list(usage)
    assert [r.label for r in splits.test] == [level for level, _ in usage.values()]
    assert splits.test[0].path == str(kaggle_root / "test" / "1_left.jpeg")
    public, private = splits.subsets["test"]["Public"], splits.subsets["test"]["Private"]
    assert sorted(public + private) == list(range(len(usage)))
    assert all(list(usage.values())[i][1] == "Public" for i in public) and len(public) == 4
    assert len(splits.train) + len(splits.val) == 60 and len(splits.val) == 12  # no holdout


def test_auto_falls_back_to_holding_out_patients_and_kaggle_insists(tmp_path):
    root = write_eyepacs(tmp_path / "eyepacs", eyepacs_labels(30))
    splits = eyepacs.load(root, val_fraction=0.2, test_fraction=0.1, split_seed=0,
                          test_set="auto")
    assert len(splits.test) == 6 and not splits.subsets
    with pytest.raises(DataError, match="lacks retinopathy_solution.csv or test/"):
        eyepacs.load(root, val_fraction=0.2, test_fraction=0.1, split_seed=0, test_set="kaggle")


def test_holdout_ignores_the_kaggle_test_set(kaggle_root):
    splits = eyepacs.load(kaggle_root, val_fraction=0.2, test_fraction=0.1, split_seed=0,
                          test_set="holdout")
    assert {r.image_id for r in splits.test} <= set(eyepacs_labels(30))


def test_bad_usage_and_missing_test_images_are_named(tmp_path):
    usage = kaggle_usages() | {"1_left": (0, "Secret")}
    root = add_test_set(write_eyepacs(tmp_path / "a", eyepacs_labels(30)), usage)
    with pytest.raises(DataError, match="line 2: Usage 'Secret' of 1_left is not one of"):
        eyepacs.read_test_labels(root)
    root = add_test_set(write_eyepacs(tmp_path / "b", eyepacs_labels(30)), kaggle_usages(),
                        missing=("2_right",))
    with pytest.raises(DataError, match="1 of 16 images listed in .*retinopathy_solution.csv "
                                        "are missing"):
        eyepacs.read_test_labels(root)


def test_graham_preprocessing_is_selected_by_config(tmp_path):
    config = tiny_config(tmp_path)
    assert registry.get("eyepacs").decoder(config).preprocess is None
    config.eyepacs.preprocess = "graham"
    assert isinstance(registry.get("eyepacs").decoder(config).preprocess, GrahamPreprocess)


@pytest.mark.slow
def test_a_run_scores_the_kaggle_test_set_per_usage(kaggle_root, tmp_path):
    config = tiny_config(tmp_path, overrides={"data.root": str(kaggle_root)})
    config.train.epochs = 1
    config.eval.bootstrap_samples = 2  # the intervals only need to be there
    config.eyepacs.preprocess = "graham"
    results = train.train_and_evaluate(config, tmp_path / "run")
    test = results["test"]
    assert test["count"] == 16 and results["split_sizes"]["test"] == 16
    assert {name: part["count"] for name, part in test["subsets"].items()} == {
        "Public": 4, "Private": 12}
    public = test["subsets"]["Public"]
    assert set(public) >= {"accuracy", "kappa", "accuracy_ci"}
    assert "subsets" not in results["val"]
