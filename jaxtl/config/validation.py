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
from jaxtl.core.settings import (AUGMENTATIONS, DTYPES, Rule, ascending_epochs, augment_list,
                                boolean, choice, epochs_from_zero, number, parse_augment,
                                positive_integers, positive_numbers, text, triple_of_positive)
from jaxtl.data import registry
from jaxtl.data.transforms import BAD_IMAGE_POLICIES
from jaxtl.core.errors import ConfigError
from jaxtl.metrics.segmentation import INSTANCE_METHODS

__all__ = ["AUGMENTATIONS", "DTYPES", "flatten", "parse_augment", "to_json", "validate"]
LOSS_WEIGHTINGS = ("none", "balanced")  # train.class_weights, train.positive_weights


def _rules(dataset: str) -> dict[str, Rule]:
    """The rules of the common keys plus those the dataset's spec adds (data.task and its own
    section)."""
    archs = tuple(models.list_models())
    extra = dict(registry.get(dataset).rules)
    return {
        "dataset": registry.dataset_rule,
        "data.root": text,
        "data.tfds": text,
        "data.tfds_dir": text,
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
        "data.num_workers": number(0, 256, integer=True, allowed_extra=(-1,)),
        "data.prefetch_batches": number(1, 64, integer=True),
        "data.cache_dir": text,
        "data.prepared": text,
        "data.bad_images": choice(*BAD_IMAGE_POLICIES),
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
        "optim.weight_decay_mask": choice(*optim.WEIGHT_DECAY_MASKS),
        "optim.rho_0": number(0.0, 0.9999),
        "optim.alpha": number(0.0, 1.0),
        "optim.clip_grad_norm": number(0.0, None),
        "optim.schedule": choice(*optim.SCHEDULES),
        "optim.warmup_epochs": number(0.0, None),
        "optim.gradual_decay": choice(*optim.GRADUAL_DECAYS),
        "optim.end_lr_fraction": number(0.0, 1.0),
        "optim.min_lr_fraction": number(0.0, 1.0),
        "optim.cycle_epochs": number(0.01, None),
        "optim.decay_epochs": ascending_epochs,
        "optim.decay_factor": number(0.0, 1.0),
        "finetune.strategy": choice(*optim.STRATEGIES),
        "finetune.freeze_stages": number(0, None, integer=True),
        "finetune.unfreeze_epochs": epochs_from_zero,
        "finetune.stage_lr_multipliers": positive_numbers,
        "train.epochs": number(1, None, integer=True),
        "train.early_stopping_patience": number(0, None, integer=True),
        "train.early_stopping_min_delta": number(0.0, None),
        "train.label_smoothing": number(0.0, 0.99),
        "train.eval_every_epochs": number(1, None, integer=True),
        "train.checkpoint_every_epochs": number(1, None, integer=True),
        "train.checkpoint_every_steps": number(0, None, integer=True),
        "train.checkpoint_every_minutes": number(0.0, None),
        "train.keep_checkpoints": number(1, None, integer=True),
        "train.log_every_steps": number(1, None, integer=True),
        "train.seed": number(0, 2**31 - 1, integer=True),
        "train.class_weights": choice(*LOSS_WEIGHTINGS),
        "train.positive_weights": choice(*LOSS_WEIGHTINGS),
        "probe.c_values": positive_numbers,
        "probe.max_iter": number(1, None, integer=True),
        "eval.batch_size": number(1, None, integer=True),
        "eval.best_metric": text,  # checked against the dataset's metrics below
        "eval.bootstrap_samples": number(0, 100_000, integer=True),
        "eval.bootstrap_seed": number(0, 2**31 - 1, integer=True),
        "seg.decoder_channels": positive_integers,
        "seg.ce_weight": number(0.0, None),
        "seg.dice_weight": number(0.0, None),
        "seg.window_overlap": number(0.0, 0.9),
        "seg.instances": choice(*INSTANCE_METHODS),
        "seg.overlay_tiles": number(0, None, integer=True),
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


def resolution_problems(config: ml_collections.ConfigDict) -> list[str]:
    """A resolution below what its architecture accepts (e.g. inception_v3 below 75 px)."""
    pairs = (("model.arch", config.model.arch, "data.resolution", config.data.resolution),
             ("demo.arch", config.demo.arch, "demo.resolution", config.demo.resolution))
    return [f"config.{resolution_key} is {resolution}; {arch} (config.{arch_key}) needs at "
            f"least {models.min_input_size(arch)} px: raise config.{resolution_key} or choose "
            f"another architecture"
            for arch_key, arch, resolution_key, resolution in pairs
            if resolution < models.min_input_size(arch)]


def location_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Keys that say where data is, set for a dataset that reads its data elsewhere."""
    spec = registry.get(config.dataset)
    problems = []
    for key in registry.LOCATION_KEYS:
        section, name = key.split(".")
        if key != spec.location and config[section][name]:
            problems.append(f"config.{key} is {config[section][name]!r}, but {spec.name} reads "
                            f"its data from config.{spec.location}; set that instead"
                            + (_TFDS_HINT if key == "data.tfds_dir" else ""))
    if config.data.tfds and spec.location != "data.tfds_dir":
        problems.append(f"config.data.tfds is {config.data.tfds!r}, but config.dataset is "
                        f"{config.dataset!r}, which is not read from TensorFlow Datasets"
                        + _TFDS_HINT)
    return problems


_TFDS_HINT = ("; TFDS datasets are read with their own config: --config "
              "configs/tfds.py:NAME[/CONFIG] --config.data.tfds_dir=DIR")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError listing every unknown key, missing key and invalid value, on one
    line ("invalid config: ...; ..."). An unknown dataset is reported alone: the keys of its
    section cannot be checked without it."""
    dataset = config.dataset if "dataset" in config else ""
    if (problem := registry.dataset_rule(dataset)) is not None:
        raise ConfigError(f"invalid config: config.dataset {problem}")
    rules = _rules(dataset)
    leaves = dict(flatten(config))
    problems = [f"config.{key} is not a known setting; remove it (known settings are listed "
                f"in jaxtl/config/base.py and the dataset's spec.py)"
                for key in leaves if key not in rules]
    problems += [f"config.{key} is missing; add it to the config file" for key in rules
                 if key not in leaves]
    for key, rule in rules.items():
        if key in leaves and (problem := rule(leaves[key])) is not None:
            problems.append(f"config.{key} {problem}")
    if not problems and config.data.val_fraction + config.data.test_fraction >= 1.0:
        problems.append("config.data.val_fraction + config.data.test_fraction must be below 1 "
                        "so that patients are left for training")
    if not problems:
        metrics = registry.get(config.dataset).metrics
        if config.eval.best_metric not in metrics:
            problems.append(f"config.eval.best_metric is {config.eval.best_metric!r}; allowed "
                            f"values for {config.dataset}: {', '.join(metrics)}")
        if not len(config.data.mean) == len(config.data.std) == config.data.channels:
            problems.append(f"config.data.mean and config.data.std must have one value per "
                            f"channel each (data.channels={config.data.channels}); they have "
                            f"{len(config.data.mean)} and {len(config.data.std)}")
        problems += location_problems(config)
        problems += [f"config.{problem}" for problem in registry.get(config.dataset).check(config)]
        problems += resolution_problems(config)
    if not problems:
        problems += _optim_problems(config)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))


def _optim_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of optim, finetune and probe that only make sense together."""
    problems = []
    optim_config, finetune = config.optim, config.finetune
    if (optim_config.schedule == "gradual" and optim_config.gradual_decay == "exponential"
            and optim_config.end_lr_fraction <= 0):
        problems.append("config.optim.end_lr_fraction must be above 0 for the exponential "
                        "gradual decay (it is the final lr / lr, e.g. 0.01)")
    stages = [stage.name for stage in optim.stages_of(config.model.arch)]
    named = f"{config.model.arch} has {len(stages)} stages: {', '.join(stages)}"
    strategy = finetune.strategy
    if strategy == "freeze_stages" and not 1 <= finetune.freeze_stages <= len(stages):
        problems.append(f"config.finetune.freeze_stages is {finetune.freeze_stages}; "
                        f"expected 1 .. {len(stages)} ({named})")
    if strategy != "freeze_stages" and finetune.freeze_stages != 0:
        problems.append(f"config.finetune.freeze_stages is {finetune.freeze_stages} but "
                        f"finetune.strategy is {strategy!r}; set it to 0 or use freeze_stages")
    if strategy == "gradual_unfreeze" and not 1 <= len(finetune.unfreeze_epochs) <= len(stages):
        problems.append(f"config.finetune.unfreeze_epochs is {finetune.unfreeze_epochs!r}; "
                        f"gradual_unfreeze needs 1 .. {len(stages)} epochs, one per stage "
                        f"from the top down ({named})")
    if strategy != "gradual_unfreeze" and finetune.unfreeze_epochs:
        problems.append(f"config.finetune.unfreeze_epochs is {finetune.unfreeze_epochs!r} but "
                        f"finetune.strategy is {strategy!r}; set it to () or use "
                        f"gradual_unfreeze")
    if not config.probe.c_values:
        problems.append("config.probe.c_values is (); give at least one C, e.g. (0.1, 1.0)")
    multipliers = finetune.stage_lr_multipliers
    if multipliers and len(multipliers) != len(stages):
        problems.append(f"config.finetune.stage_lr_multipliers has {len(multipliers)} values; "
                        f"expected () or one per stage from the input up ({named})")
    return problems


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)
