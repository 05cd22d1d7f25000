"""`python -m jaxtl.commands.stats`: per-split counts after filters and policies, no image opened."""

from __future__ import annotations

import json

from conftest import config_of
from layouts.chest import chexpert_row, write_chexpert
from programs import run_programs

from jaxtl.commands import stats
from jaxtl.data import loading


def test_counts_per_split_and_label_by_hand(tmp_path):
    rows = [chexpert_row(1, 1, "Frontal", {"Edema": "1.0", "Lung Opacity": "-1.0"}),
            chexpert_row(1, 2, "Frontal", {"Edema": "0.0"}),
            chexpert_row(2, 1, "Frontal", {"Edema": "-1.0", "Lung Opacity": "1.0"}),
            chexpert_row(2, 1, "Lateral", {"Edema": "1.0"}, number=2)]
    root = write_chexpert(tmp_path / "c", rows, [], images=False)  # no image files at all
    config = config_of("chexpert")
    config.data.root = str(root)
    config.data.task = "Edema,Lung Opacity"
    config.chest.uncertain_per_label = "Edema=multiclass"
    config.chest.empty = "mask"
    config.data.val_fraction, config.data.test_fraction = 0.0, 0.0
    result = stats.dataset_stats(loading.sampled_splits(config, root))
    train = result["splits"]["train"]
    assert train["images"] == 3 and train["patients"] == 2
    assert train["labels"]["Edema"] == {"positive": 1, "negative": 1, "uncertain": 1,
                                        "masked": 0}
    assert train["labels"]["Lung Opacity"] == {"positive": 1, "negative": 0, "uncertain": 0,
                                               "masked": 2}
    assert result["shared_patients"] == {"train/val": 0, "train/test": 0, "val/test": 0}


def test_command_prints_json_for_the_demo_data(tmp_path):
    (result,) = run_programs([("jaxtl.commands.stats", [
        "--config", "configs/cxr14.py", "--json", f"--config.data.cache_dir={tmp_path}",
        "--config.demo.num_patients=30", "--config.demo.image_size=32",
        "--config.data.task=all"])], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = json.loads(result.stdout)
    assert output["demo"] is True and len(output["label_names"]) == 14
    sizes = [output["splits"][name]["images"] for name in ("train", "val", "test")]
    assert all(size > 0 for size in sizes)
    assert set(output["shared_patients"].values()) == {0}


def test_command_reports_a_bad_root_in_one_line(tmp_path):
    (result,) = run_programs([("jaxtl.commands.stats", [
        "--config", "configs/chexpert.py", f"--config.data.root={tmp_path / 'nowhere'}"])],
        timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: CheXpert root")
