"""The built-in demo: what changes when no dataset is configured (its location key,
data.root or data.tfds_dir, is empty).

A demo run trains on small synthetic data, so it replaces the settings of `SETTINGS` (model,
resolution, batch, epochs, workers, bootstrap resamples) by their `config.demo` counterparts.
A value the user set for one of them explicitly is never replaced silently: `apply` refuses it
(`set_by_user`), naming the demo.* key to set instead; a replaced value that breaks its rule is
refused too, so that the config as given is valid where `validate` sees only the final one.
"""

from __future__ import annotations

from collections.abc import Collection

import ml_collections

from jaxtl.config.base import COMMON, flatten
from jaxtl.core.errors import ConfigError
from jaxtl.core.settings import flat
from jaxtl.data import loading
from jaxtl.data.demo_store import demo_root
from jaxtl.data.registry import DatasetSpec

# key a demo run replaces -> the demo setting that replaces it
SETTINGS = {"model.arch": "demo.arch", "data.resolution": "demo.resolution",
            "data.batch_size": "demo.batch_size", "train.epochs": "demo.epochs",
            "data.num_workers": "demo.num_workers",
            "eval.bootstrap_samples": "demo.bootstrap_samples"}


def _get(config: ml_collections.ConfigDict, key: str):
    section, name = key.split(".")
    return config[section][name]


def replaced(config: ml_collections.ConfigDict, keys: Collection[str],
             spec: DatasetSpec | None = None) -> list[str]:
    """Which of `keys` a demo run of `config` would change (none when it has data); `spec`:
    the dataset's, when the caller has it."""
    if not loading.is_demo(config, spec):
        return []
    return [key for key in keys if key in SETTINGS
            and _get(config, key) != _get(config, SETTINGS[key])]


def apply(config: ml_collections.ConfigDict, set_by_user: Collection[str] = (),
          spec: DatasetSpec | None = None) -> list[str]:
    """Switches a config without data to the demo settings; returns the banner lines. Refuses
    (ConfigError) to replace a value the user set (`set_by_user`: config keys) or one that
    breaks its rule. `spec`: the dataset's, when the caller has it."""
    spec = loading.spec_of(config, spec)
    leaves = dict(flatten(config))
    if not loading.is_demo(config, spec) or not all(
            key in leaves for pair in SETTINGS.items() for key in pair):
        return []  # data, or a key missing (which `validate` reports)
    where = spec.location
    if refused := replaced(config, set_by_user, spec):
        raise ConfigError(
            f"{', '.join(f'config.{key}={_get(config, key)!r}' for key in refused)} is set, but "
            f"this run has no {where}, so it is a demo run that trains with "
            f"{', '.join(f'config.{SETTINGS[key]}={_get(config, SETTINGS[key])!r}' for key in refused)}"
            f" instead: set {', '.join(f'--config.{SETTINGS[key]}' for key in refused)} for "
            f"the demo data, or give --config.{where}")
    rules = flat(COMMON)
    if invalid := [f"config.{key} {problem}" for key in SETTINGS
                   if (problem := rules[key].rule(leaves[key])) is not None]:
        raise ConfigError("invalid config: " + "; ".join(invalid))
    changed = []
    for key, demo_key in SETTINGS.items():
        section, name = key.split(".")
        old, new = config[section][name], _get(config, demo_key)
        config[section][name] = new
        if old != new:
            changed.append(f"{key} {old} -> {new}")
    return [
        f"DEMO RUN: no {where} set, so synthetic {config.dataset} data in the real layout is "
        f"used ({demo_root(config, spec)}).",
        "DEMO RUN: demo settings (config.demo): " + (", ".join(changed) or "none changed"),
        f"DEMO RUN: for real data pass --config.{where}=/path/to/{config.dataset}",
    ]
