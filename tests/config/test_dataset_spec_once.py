"""The dataset spec is resolved once per run and passed down (demo override, validation, data,
build), and the config is validated once, on the final config."""

from __future__ import annotations

import pytest
from conftest import tiny_config

from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.data import registry
from jaxtl.engine.build import build
from jaxtl.training import loop as train


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """The names `registry.get` is asked for from now on (a config file asks once for its
    base config: clear the list after loading one)."""
    asked: list[str] = []
    real = registry.get

    def counting(name: str):
        asked.append(name)
        return real(name)

    monkeypatch.setattr(registry, "get", counting)
    return asked


def test_building_a_run_looks_the_dataset_up_once(tmp_path, lookups):
    """Segmentation: the spec's crops and tiles come from the spec passed down. (Images:
    the training run below.)"""
    dataset = "consep_seg"
    config = tiny_config(tmp_path, dataset)
    lookups.clear()
    spec = configuration.dataset_spec(config)
    demo.apply(config, (), spec)
    assert configuration.validate(config, spec) is spec
    run, _ = build(config, spec)
    assert lookups == [dataset]
    assert run.spec is spec and run.splits.name == spec.name


def test_a_training_run_resolves_the_spec_once_and_validates_once(tmp_path, lookups,
                                                                  monkeypatch):
    validated: list[dict] = []
    real_validate = configuration.validate

    def recording(config, spec=None):
        validated.append(config.to_dict())
        return real_validate(config, spec)

    monkeypatch.setattr(configuration, "validate", recording)
    config = tiny_config(tmp_path)
    config.demo.epochs = 1
    lookups.clear()
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert results["demo"] is True and results["dataset"] == "eyepacs"
    assert lookups == ["eyepacs"]
    assert len(validated) == 1  # after the demo override: the settings the run trained with
    assert validated[0]["model"]["arch"] == config.demo.arch
    assert validated[0]["train"]["epochs"] == 1
