"""CoNSeP end to end on tiny demo data: grey and RGB patches train, both split modes are
scored, and the stats tool shows which tiles the splits share."""

from __future__ import annotations

import pytest
from conftest import tiny_config

from jaxtl.commands import stats
from jaxtl.data import loading
from jaxtl.training import loop as train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    """One CoNSeP demo dataset (written once) for the module's tests."""
    return tmp_path_factory.mktemp("demo")


def test_grey_patches_train_on_a_random_split(tmp_path, demo_cache):
    # 2 bootstrap resamples, not 20: macro_f1_ci only needs to be there
    config = tiny_config(demo_cache, "consep", {"consep.split": "random",
                                                "demo.bootstrap_samples": 2})
    config.data.channels, config.data.mean, config.data.std = 1, (0.5,), (0.25,)
    config.data.task = "type4"
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["task"]["names"] == ["other", "inflammatory", "epithelial", "spindle-shaped"]
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
    assert len(results["test"]["confusion_matrix"]) == 4
    assert results["test"]["macro_f1_ci"] is not None


def test_split_modes_as_the_stats_tool_reports_them(demo_cache):
    tiles = stats.dataset_stats(loading.sampled_splits(
        tiny_config(demo_cache, "consep"), loading.data_root(tiny_config(demo_cache, "consep"))))
    assert tiles["shared_patients"] == {"train/val": 0, "train/test": 0, "val/test": 0}
    table = stats.format_table(tiles)
    assert f"test: {tiles['splits']['test']['images']} patches, 3 tiles" in table
    assert "tiles shared between splits: train/val 0, train/test 0, val/test 0" in table
    assert tiles["splits"]["test"]["patients"] == 3  # the demo's Test/ tiles
    assert sum(tiles["splits"]["test"]["classes"].values()) == tiles["splits"]["test"]["images"]
    random = stats.dataset_stats(loading.sampled_splits(
        tiny_config(demo_cache, "consep", {"consep.split": "random"}),
        loading.data_root(tiny_config(demo_cache, "consep", {"consep.split": "random"}))))
    assert random["shared_patients"]["train/test"] >= 8  # (nearly) every tile on both sides
    assert (sum(s["images"] for s in random["splits"].values())
            == sum(s["images"] for s in tiles["splits"].values()))
