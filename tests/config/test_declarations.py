"""Each setting declared once: the declarations build the base config of every dataset as it was
before (tests/config/defaults_before.py), and each declaration has a rule that says what it
allows and a help text."""

from __future__ import annotations

import pytest
from defaults_before import DEFAULTS_BEFORE

from jaxtl.config import validation as configuration
from jaxtl.config.base import COMMON, base_config, flatten, settings_of
from jaxtl.core.errors import ConfigError
from jaxtl.core.settings import Setting, allowed_values, choice, flat, number
from jaxtl.data import registry


def typed_leaves(tree) -> dict[str, tuple[type, object]]:
    """'section.key' -> (type, value): 10 and 10.0 or (1,) and [1] differ."""
    return {key: (type(value), value) for key, value in flatten(tree)}


def test_every_built_in_dataset_is_in_the_copy_of_the_old_defaults():
    assert set(DEFAULTS_BEFORE) == set(registry.names())


@pytest.mark.parametrize("dataset", sorted(DEFAULTS_BEFORE))
def test_declarations_build_the_base_config_as_before(dataset):
    config = base_config(dataset)
    assert config.to_dict() == DEFAULTS_BEFORE[dataset]
    assert typed_leaves(config) == typed_leaves(DEFAULTS_BEFORE[dataset])


def test_eyepacs_and_consep_seg_defaults_by_hand():
    """A few values read off the old base.py and spec.py, not off the declarations."""
    eyepacs, seg = base_config("eyepacs"), base_config("consep_seg")
    assert (eyepacs.data.task, eyepacs.data.augment, eyepacs.data.rotate_degrees) == (
        "grade", "crop,flip,rotate", 180.0)
    assert eyepacs.eval.best_metric == "kappa" and eyepacs.eyepacs.test_set == "auto"
    assert "consep_seg" not in eyepacs and "eyepacs" not in seg
    assert (seg.data.task, seg.eval.best_metric, seg.consep_seg.crops_per_tile) == (
        "type4", "dice_nuclei", 8)
    assert seg.data.rotate_degrees == 10.0 and seg.demo.num_patients == 41
    assert seg.optim.decay_epochs == (10, 20) and seg.seg.decoder_channels == (
        256, 128, 64, 32, 16)


@pytest.mark.parametrize("dataset", registry.names())
def test_every_key_is_declared_once_with_rule_and_help(dataset):
    spec = registry.get(dataset)
    settings = settings_of(spec)
    leaves = [key for key, _ in flatten(base_config(dataset))]
    assert sorted(leaves) == sorted(settings)
    for key, setting in settings.items():
        assert isinstance(setting, Setting), key
        assert setting.help.strip(), f"{key} has no help"
        assert allowed_values(setting.rule), f"{key}'s rule does not say what it allows"
    for dotted in spec.defaults:
        assert dotted in flat(COMMON), f"{dataset} sets a default of {dotted}, not a common key"


@pytest.mark.parametrize("dataset", registry.names())
def test_every_declared_default_passes_its_rule(dataset):
    """What validate checks is what base_config writes: each default passes its own rule."""
    config = base_config(dataset)
    leaves = dict(flatten(config))
    for key, setting in settings_of(registry.get(dataset)).items():
        if key != "dataset":
            assert setting.rule(leaves[key]) is None, (key, leaves[key])
    configuration.validate(config)


def test_a_dataset_declares_the_rule_of_its_task():
    config = base_config("consep_seg")
    config.data.task = "grade"  # EyePACS's task
    with pytest.raises(ConfigError, match="config.data.task is 'grade'; allowed values: "
                                          "type7, type4, nuclei"):
        configuration.validate(config)


def test_rules_say_what_they_allow():
    assert allowed_values(choice("sgd", "adam")) == "sgd, adam"
    assert allowed_values(choice(8, 16)) == "8, 16"
    assert choice(8, 16)(12) == "is 12; allowed values: 8, 16"
    assert allowed_values(number(1, None, integer=True, allowed_extra=(-1,))) == (
        "an integer in 1 .. inf (or -1)")
    assert allowed_values(number(0.0, 0.9)) == "a number in 0.0 .. 0.9"
    assert allowed_values(lambda value: None) == ""
