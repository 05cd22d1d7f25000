"""Recipes: a paper's fine-tuning protocol applied to any dataset's config file.

A recipe is a config file (`configs/recipes/<name>.py`) whose argument is the dataset's config
file, with that file's own argument if it takes one:

    python -m jaxtl.main --config configs/recipes/retfound.py:configs/eyepacs.py ...
    python -m jaxtl.main --config configs/recipes/retfound.py:configs/tfds.py:NAME ...

It sets the protocol's keys (optimizer, schedule, regularisation, augmentation) over the
dataset's config; the data, the model and its starting weights stay with the command line, whose
`--config.KEY=VALUE` overrides are applied after the recipe, as to any config file. A sweep
names a recipe the same way in its `config` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxtl.config import files
from jaxtl.config.base import flatten
from jaxtl.core.errors import ConfigError


def recipe_config(recipe: str, dataset_config: str | None,
                  settings: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """The config file `dataset_config` (path.py[:arg]) with `settings` ('section.key' ->
    value) set; `recipe`: the recipe file's name, for the messages."""
    if not dataset_config:
        raise ConfigError(f"{recipe} is a recipe: give the dataset's config file after ':', "
                          f"e.g. --config configs/recipes/{recipe}.py:configs/eyepacs.py")
    config = files.load_config(dataset_config)
    known = dict(flatten(config))
    if unknown := [key for key in settings if key not in known]:
        raise ConfigError(f"recipe {recipe} sets {', '.join(unknown)}, which "
                          f"{files.split_spec(dataset_config)[0]} does not have")
    for key, value in settings.items():
        section, name = key.split(".")
        config[section][name] = value
    return config
