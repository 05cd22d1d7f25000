"""Recipes (configs/recipes/): a paper's protocol over any dataset's config file, the command
line's overrides applied after it."""

from __future__ import annotations

import math

import pytest
from programs import run_programs

from jaxtl.config import demo_settings, validation
from jaxtl.config.files import load_config, load_module
from jaxtl.config.recipes import recipe_config
from jaxtl.core.errors import ConfigError
from jaxtl.optim import schedules

RETFOUND = "configs/recipes/retfound.py"
RECIPES = (RETFOUND, "configs/recipes/linear_probe.py")


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("dataset", ["eyepacs", "chexpert", "consep", "bigearthnet"])
def test_a_recipe_sets_its_keys_over_any_datasets_config(recipe, dataset):
    config = load_config(f"{recipe}:configs/{dataset}.py")
    plain = load_config(f"configs/{dataset}.py")
    settings = load_module(recipe).SETTINGS
    for key, value in settings.items():
        section, name = key.split(".")
        assert config[section][name] == value, key
    untouched = [key for key in ("dataset", "data.task", "eval.best_metric", "data.channels")
                 if key not in settings]
    for key in untouched:
        node_a, node_b = config, plain
        for part in key.split("."):
            node_a, node_b = node_a[part], node_b[part]
        assert node_a == node_b, key
    if config.data.randaugment and config.data.channels not in (1, 3):  # BigEarthNet's 10 bands
        with pytest.raises(ConfigError, match="RandAugment's colour ops take grey"):
            validation.validate(config)
        config.data.randaugment = ""
    validation.validate(config)


def test_the_command_line_overrides_the_recipe():
    [listing] = run_programs([("jaxtl.commands.settings", [
        "--config", f"{RETFOUND}:configs/eyepacs.py", "--config.optim.layer_decay=0.75"])])
    assert listing.returncode == 0, listing.stderr[-2000:]
    values = {line.split(" = ")[0].strip(): line.split(" = ")[1]
              for line in listing.stdout.splitlines() if line.startswith("  ") and " = " in line}
    assert values["optim.layer_decay"] == "0.75"  # the command line, after the recipe
    assert values["optim.name"] == "'adamw'" and values["optim.base_lr"] == "0.005"


def test_retfounds_schedule_ends_at_1e_6_at_its_batch():
    config = load_config(f"{RETFOUND}:configs/eyepacs.py")
    peak = schedules.peak_lr(config.optim, config.data.batch_size)
    assert math.isclose(peak, 5e-3 * 16 / 256)
    assert math.isclose(peak * config.optim.end_lr_fraction, 1e-6)


def test_a_demo_run_of_a_50_epoch_recipe_asks_for_a_shorter_warmup():
    config = load_config(f"{RETFOUND}:configs/eyepacs.py")
    demo_settings.apply(config)  # no data.root: demo.epochs (4) replaces the recipe's 50
    with pytest.raises(ConfigError, match=r"config.optim.warmup_epochs is 10, longer than the "
                                          r"run's 4 epochs .*lower optim.warmup_epochs"):
        validation.validate(config)
    config.optim.warmup_epochs = 1.0
    validation.validate(config)


def test_a_recipe_without_a_dataset_or_with_an_unknown_key_says_so():
    with pytest.raises(ConfigError, match=r"retfound is a recipe: give the dataset's config file "
                                          r"after ':', e\.g\. --config "
                                          r"configs/recipes/retfound\.py:configs/eyepacs\.py"):
        load_config(RETFOUND)
    with pytest.raises(ConfigError, match=r"recipe mine sets optim\.bogus, which "
                                          r"configs/eyepacs\.py does not have"):
        recipe_config("mine", "configs/eyepacs.py", {"optim.bogus": 1, "optim.lr": 0.1})
