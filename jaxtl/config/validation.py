"""Checks a run's config before anything is built or compiled.

Every leaf of the config must be declared (jaxtl/config/base.py and the dataset's spec), and
every declared key must be in the config: a typo or a stale key is an error naming the closest
known key, never a silently ignored setting. The values pass their declared rules, then the
checks across keys here and in the dataset's spec. All problems are reported at once, each naming
the key and what is allowed.
"""

from __future__ import annotations

import json

import ml_collections

from jaxtl import models, optim
from jaxtl.config.base import LOSS_WEIGHTINGS, flatten, settings_of
from jaxtl.core.errors import ConfigError
from jaxtl.core.settings import AUGMENTATIONS, DTYPES, parse_augment, unknown_setting
from jaxtl.data import registry
from jaxtl.data.registry import DatasetSpec
from jaxtl.models.registry import has_remat

__all__ = ["AUGMENTATIONS", "DTYPES", "LOSS_WEIGHTINGS", "dataset_spec", "flatten",
           "parse_augment", "to_json", "validate"]


def dataset_spec(config: ml_collections.ConfigDict) -> DatasetSpec:
    """The spec `config.dataset` names: a run looks it up here once and passes it down.
    ConfigError ("invalid config: config.dataset ...") when it names none."""
    dataset = config.dataset if "dataset" in config else ""
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"invalid config: config.dataset {registry.dataset_rule(dataset)}")
    try:
        return registry.get(dataset)
    except ConfigError as error:
        raise ConfigError(f"invalid config: {error}") from None


def resolution_problems(config: ml_collections.ConfigDict) -> list[str]:
    """A resolution below what its architecture accepts (e.g. inception_v3 below 75 px)."""
    pairs = (("model.arch", config.model.arch, "data.resolution", config.data.resolution),
             ("demo.arch", config.demo.arch, "demo.resolution", config.demo.resolution))
    return [f"config.{resolution_key} is {resolution}; {arch} (config.{arch_key}) needs at "
            f"least {models.min_input_size(arch)} px: raise config.{resolution_key} or choose "
            f"another architecture"
            for arch_key, arch, resolution_key, resolution in pairs
            if resolution < models.min_input_size(arch)]


def location_problems(config: ml_collections.ConfigDict, spec: DatasetSpec) -> list[str]:
    """Keys that say where data is, set for a dataset (`spec`) that reads its data elsewhere."""
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


def validate(config: ml_collections.ConfigDict,
             spec: DatasetSpec | None = None) -> DatasetSpec:
    """Raises ConfigError listing every unknown key, missing key and invalid value, on one
    line ("invalid config: ...; ..."); returns the dataset's spec. `spec`: the spec of
    `config.dataset` when the caller has it (`dataset_spec`); an unknown dataset is reported
    alone, the keys of its sections cannot be checked without it."""
    spec = spec or dataset_spec(config)
    settings = settings_of(spec)
    leaves = dict(flatten(config))
    problems = [unknown_setting(key, settings) for key in leaves if key not in settings]
    problems += [f"config.{key} is missing; add it to the config file" for key in settings
                 if key not in leaves]
    for key, setting in settings.items():
        if key == "dataset":  # `spec` is what it names
            continue
        if key in leaves and (problem := setting.rule(leaves[key])) is not None:
            problems.append(f"config.{key} {problem}")
    if not problems and config.data.val_fraction + config.data.test_fraction >= 1.0:
        problems.append("config.data.val_fraction + config.data.test_fraction must be below 1 "
                        "so that patients are left for training")
    if not problems:
        if config.eval.best_metric not in spec.metrics:
            problems.append(f"config.eval.best_metric is {config.eval.best_metric!r}; allowed "
                            f"values for {config.dataset}: {', '.join(spec.metrics)}")
        if not len(config.data.mean) == len(config.data.std) == config.data.channels:
            problems.append(f"config.data.mean and config.data.std must have one value per "
                            f"channel each (data.channels={config.data.channels}); they have "
                            f"{len(config.data.mean)} and {len(config.data.std)}")
        problems += location_problems(config, spec)
        problems += [f"config.{problem}" for problem in spec.check(config)]
        problems += resolution_problems(config)
    if not problems:
        problems += _optim_problems(config)
        problems += _device_augment_problems(config, spec)
        problems += _training_option_problems(config, spec)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
    return spec


def _optim_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of optim, finetune and probe that only make sense together."""
    problems = []
    optim_config, finetune = config.optim, config.finetune
    if (optim_config.schedule == "gradual" and optim_config.gradual_decay == "exponential"
            and optim_config.end_lr_fraction <= 0):
        problems.append("config.optim.end_lr_fraction must be above 0 for the exponential "
                        "gradual decay (it is the final lr / lr, e.g. 0.01)")
    if (optim_config.schedule in ("gradual", "one_cycle")
            and optim_config.warmup_epochs > config.train.epochs):
        problems.append(f"config.optim.warmup_epochs is {optim_config.warmup_epochs:g}, longer "
                        f"than the run's {config.train.epochs} epochs (config.train.epochs; "
                        f"a demo run trains config.demo.epochs): the rate would never reach "
                        f"its peak; lower optim.warmup_epochs")
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
    if config.train.adapter == "lora" and strategy != "full":
        problems.append(f"config.train.adapter is 'lora' but finetune.strategy is "
                        f"{strategy!r}: LoRA trains the adapters and the head and freezes the "
                        f"rest; set finetune.strategy=full")
    if config.train.adapter == "lora" and finetune.stage_lr_multipliers:
        problems.append("config.train.adapter is 'lora' but finetune.stage_lr_multipliers is "
                        "set: the adapters and the head train at optim.lr; set it to ()")
    if config.train.adapter == "lora" and not config.model.init:
        problems.append("config.train.adapter is 'lora' but model.init is empty: LoRA adapts "
                        "pretrained weights; set model.init to a converted checkpoint or a run")
    if not config.probe.c_values:
        problems.append("config.probe.c_values is (); give at least one C, e.g. (0.1, 1.0)")
    multipliers = finetune.stage_lr_multipliers
    if multipliers and len(multipliers) != len(stages):
        problems.append(f"config.finetune.stage_lr_multipliers has {len(multipliers)} values; "
                        f"expected () or one per stage from the input up ({named})")
    return problems


def _device_augment_problems(config: ml_collections.ConfigDict,
                             spec: DatasetSpec) -> list[str]:
    """RandAugment, random erasing and mixup/cutmix: images only (a segmentation crop's mask
    would not follow them), RandAugment on grey or RGB pixels."""
    chosen = [f"config.{key} is {value!r}" for key, value in (
        ("data.randaugment", config.data.randaugment),
        ("data.random_erasing", config.data.random_erasing),
        ("train.mixup_alpha", config.train.mixup_alpha),
        ("train.cutmix_alpha", config.train.cutmix_alpha)) if value]
    if spec.segmentation and chosen:
        return [(f"{', '.join(chosen)}, but {spec.name} is a segmentation dataset, whose crops "
                 f"take data.augment's flips and rotations only: set "
                 f"{'them' if len(chosen) > 1 else 'it'} to its default ('' or 0)")]
    if config.data.randaugment and config.data.channels not in (1, 3):
        return [(f"config.data.randaugment is {config.data.randaugment!r}, but data.channels "
                 f"is {config.data.channels}: RandAugment's colour ops take grey (1) or RGB (3) "
                 f"images; set it to ''")]
    return []


def _training_option_problems(config: ml_collections.ConfigDict,
                              spec: DatasetSpec) -> list[str]:
    """train.ema_decay, eval.select, train.accumulation_steps and model.remat: the
    combinations that cannot run (the batch's split over the devices is checked when the
    steps are built, jaxtl.engine.build)."""
    problems = []
    k = config.train.accumulation_steps
    if config.eval.select == "ema" and not config.train.ema_decay:
        problems.append("config.eval.select is 'ema', but train.ema_decay is 0 (no moving "
                        "average): set train.ema_decay (e.g. 0.9999) or eval.select=raw")
    if k > 1 and spec.segmentation:
        problems.append(f"config.train.accumulation_steps is {k}, but a segmentation task's "
                        f"soft Dice loss is over the whole batch and does not split into "
                        f"micro-batches: set it to 1")
    if config.data.batch_size % k:
        problems.append(f"config.data.batch_size={config.data.batch_size} must be a multiple "
                        f"of train.accumulation_steps={k} (the micro-batches are equal)")
    if config.model.remat and spec.segmentation:
        problems.append("config.model.remat is True, but a segmentation UNet's backbone is "
                        "not rematerialised: set it to False")
    elif config.model.remat and not has_remat(config.model.arch):
        problems.append(f"config.model.remat is True, but {config.model.arch} has no "
                        f"rematerialised blocks: set it to False or use a vit or convnext "
                        f"architecture")
    return problems


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)
