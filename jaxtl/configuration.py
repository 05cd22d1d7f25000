"""Checks a run's config before anything is built or compiled.

Every leaf of the config must be named in `_rules()`, and every rule's key must be in the
config: a typo or a stale key is an error, never a silently ignored setting. All problems are
reported at once, each naming the key and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import ml_collections

from jaxtl import models, optim
from jaxtl.config_rules import (AUGMENTATIONS, DTYPES, Rule, ascending_epochs, augment_list,
                                boolean, choice, number, parse_augment, text,
                                triple_of_positive)
from jaxtl.data import datasets
from jaxtl.errors import ConfigError

__all__ = ["AUGMENTATIONS", "DTYPES", "flatten", "parse_augment", "to_json", "validate"]

def _rules(dataset: str) -> dict[str, Rule]:
    """The rules of the common keys plus those the dataset's spec adds (data.task and its own
    section)."""
    archs = tuple(models.list_models())
    extra = dict(datasets.get(dataset).rules) if dataset in datasets.names() else {}
    return {
        "dataset": choice(*datasets.names()),
        "data.root": text,
        "data.task": text,  # the dataset's rule below replaces this one
        "data.channels": number(1, 64, integer=True),
        "data.resolution": number(16, 4096, integer=True),
        "data.augment": augment_list,
        "data.crop_scale_min": number(0.05, 1.0),
        "data.rotate_degrees": number(0.0, 180.0),
        "data.mean": triple_of_positive,
        "data.std": triple_of_positive,
        "data.batch_size": number(1, None, integer=True),
        "data.train_per_class": number(1, None, integer=True, allowed_extra=(-1,)),
        "data.sample_seed": number(0, 2**31 - 1, integer=True),
        "data.val_fraction": number(0.0, 0.9),
        "data.test_fraction": number(0.0, 0.9),
        "data.split_seed": number(0, 2**31 - 1, integer=True),
        "data.num_workers": number(0, 256, integer=True),
        "data.prefetch_batches": number(1, 64, integer=True),
        "data.cache_dir": text,
        "model.arch": choice(*archs),
        "model.head": choice(*models.HEADS),
        "model.dropout": number(0.0, 0.99),
        "model.dtype": choice(*DTYPES),
        "model.init": text,
        "optim.name": choice(*optim.OPTIMIZERS),
        "optim.lr": number(1e-8, 100.0),
        "optim.momentum": number(0.0, 0.9999),
        "optim.nesterov": boolean,
        "optim.weight_decay": number(0.0, 1.0),
        "optim.rho_0": number(0.0, 0.9999),
        "optim.alpha": number(0.0, 1.0),
        "optim.schedule": choice(*optim.SCHEDULES),
        "optim.warmup_epochs": number(0.0, None),
        "optim.decay_epochs": ascending_epochs,
        "optim.decay_factor": number(0.0, 1.0),
        "train.epochs": number(1, None, integer=True),
        "train.eval_every_epochs": number(1, None, integer=True),
        "train.checkpoint_every_epochs": number(1, None, integer=True),
        "train.keep_checkpoints": number(1, None, integer=True),
        "train.log_every_steps": number(1, None, integer=True),
        "train.seed": number(0, 2**31 - 1, integer=True),
        "eval.batch_size": number(1, None, integer=True),
        "eval.best_metric": text,  # checked against the dataset's metrics below
        "eval.bootstrap_samples": number(0, 100_000, integer=True),
        "eval.bootstrap_seed": number(0, 2**31 - 1, integer=True),
        "demo.seed": number(0, 2**31 - 1, integer=True),
        "demo.num_patients": number(10, None, integer=True),
        "demo.image_size": number(16, 4096, integer=True),
        "demo.arch": choice(*archs),
        "demo.resolution": number(16, 4096, integer=True),
        "demo.batch_size": number(1, None, integer=True),
        "demo.epochs": number(1, None, integer=True),
        "demo.num_workers": number(0, 256, integer=True),
        "demo.bootstrap_samples": number(0, 100_000, integer=True),
    } | extra


def flatten(config: Mapping[str, Any] | ml_collections.ConfigDict,
            prefix: str = "") -> Iterator[tuple[str, Any]]:
    """('section.key', value) for every leaf."""
    for key, value in config.items():
        if isinstance(value, (Mapping, ml_collections.ConfigDict)):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError listing every unknown key, missing key and invalid value."""
    rules = _rules(config.dataset if "dataset" in config else "")
    leaves = dict(flatten(config))
    problems = [f"config.{key} is not a known setting; remove it (known settings are listed "
                f"in configs/common.py)" for key in leaves if key not in rules]
    problems += [f"config.{key} is missing; add it to the config file" for key in rules
                 if key not in leaves]
    for key, rule in rules.items():
        if key in leaves and (problem := rule(leaves[key])) is not None:
            problems.append(f"config.{key} {problem}")
    if not problems and config.data.val_fraction + config.data.test_fraction >= 1.0:
        problems.append("config.data.val_fraction + config.data.test_fraction must be below 1 "
                        "so that patients are left for training")
    if not problems:
        metrics = datasets.get(config.dataset).metrics
        if config.eval.best_metric not in metrics:
            problems.append(f"config.eval.best_metric is {config.eval.best_metric!r}; allowed "
                            f"values for {config.dataset}: {', '.join(metrics)}")
        if not len(config.data.mean) == len(config.data.std) == config.data.channels:
            problems.append(f"config.data.mean and config.data.std must have one value per "
                            f"channel each (data.channels={config.data.channels}); they have "
                            f"{len(config.data.mean)} and {len(config.data.std)}")
        problems += [f"config.{problem}" for problem in datasets.get(config.dataset).check(config)]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)
