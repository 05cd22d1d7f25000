"""Adding a dataset is one package plus one config file: tests/data/squares/ (written by the
recipe of docs/ARCHITECTURE.md, outside jaxtl) trains end to end with no other file touched."""

from __future__ import annotations

import pathlib

import pytest

from jaxtl.config import validation as configuration
from jaxtl.config.files import load_config
from jaxtl.core.errors import ConfigError
from jaxtl.data import registry
from jaxtl.training import loop as train

HERE = pathlib.Path(__file__).parent
CONFIG = str(HERE / "squares_config.py")


@pytest.fixture
def squares_importable(monkeypatch):
    """The package lies in this folder: put it on Python's path, as an installed one would be."""
    monkeypatch.syspath_prepend(str(HERE))


def test_a_dataset_package_outside_jaxtl_trains_end_to_end(squares_importable, tmp_path):
    config = load_config(CONFIG)
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.num_workers = 0
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["dataset"] == "squares" and results["demo"] is True
    assert results["task"]["names"] == ["square", "circle"]
    assert sum(results["split_sizes"].values()) == 120  # 60 demo patients, two images each
    assert results["test"]["accuracy"] >= 0.9, results["test"]  # a filled shape is easy


def test_its_rules_and_spec_reach_validation(squares_importable):
    config = load_config(CONFIG)
    assert registry.get("squares").units == ("images", "patients")
    config.squares.outline = "dashed"
    with pytest.raises(ConfigError, match="config.squares.outline is 'dashed'"):
        configuration.validate(config)


def test_an_unknown_dataset_names_the_built_in_ones():
    with pytest.raises(ConfigError, match="neither a built-in dataset .*eyepacs"):
        registry.get("no_such_dataset")
