"""Checks a run's config before anything is built or compiled.

Every leaf of the config must be named in `_rules()`, and every rule's key must be in the
config: a typo or a stale key is an error, never a silently ignored setting. All problems are
reported at once, each naming the key and what is allowed.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ml_collections

from jaxtl import models, optim
from jaxtl.data import datasets
from jaxtl.errors import ConfigError

Rule = Callable[[Any], str | None]  # returns what is wrong, or None when the value is fine

AUGMENTATIONS = ("crop", "flip", "rotate")
DTYPES = ("float32", "bfloat16")


def choice(*allowed: str) -> Rule:
    def check(value: Any) -> str | None:
        if value not in allowed:
            return f"is {value!r}; allowed values: {', '.join(allowed)}"
        return None

    return check


def number(low: float | None = None, high: float | None = None, *, integer: bool = False,
           allowed_extra: tuple[float, ...] = ()) -> Rule:
    def check(value: Any) -> str | None:
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"is {value!r}; expected {kind}"
        if value in allowed_extra:
            return None
        if integer and int(value) != value:
            return f"is {value!r}; expected {kind}"
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'-inf' if low is None else low} .. {'inf' if high is None else high}"
            extra = f" (or {', '.join(map(str, allowed_extra))})" if allowed_extra else ""
            return f"is {value!r}; expected {kind} in {bounds}{extra}"
        return None

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"is {value!r}; expected True or False"


def text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"is {value!r}; expected a string"


def triple_of_positive(value: Any) -> str | None:
    if (not isinstance(value, (tuple, list)) or len(value) == 0
            or not all(isinstance(v, numbers.Real) and v > 0 for v in value)):
        return f"is {value!r}; expected a tuple of positive numbers, one per channel"
    return None


def ascending_epochs(value: Any) -> str | None:
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, numbers.Real) and v > 0 for v in value):
        return f"is {value!r}; expected a tuple of positive epoch numbers, e.g. (10, 20)"
    if list(value) != sorted(value):
        return f"is {value!r}; the epochs must be in ascending order"
    return None


def augment_list(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"is {value!r}; expected 'none' or a comma list of {', '.join(AUGMENTATIONS)}"
    if value == "none":
        return None
    unknown = [a for a in parse_augment(value) if a not in AUGMENTATIONS]
    if unknown or not parse_augment(value):
        return (f"is {value!r}; expected 'none' or a comma list of "
                f"{', '.join(AUGMENTATIONS)} (e.g. 'crop,flip')")
    return None


def parse_augment(value: str) -> tuple[str, ...]:
    """'crop, flip' -> ('crop', 'flip'); 'none' -> ()."""
    if value.strip() == "none":
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _rules() -> dict[str, Rule]:
    archs = tuple(models.list_models())
    return {
        "dataset": choice(*datasets.names()),
        "data.root": text,
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
        "demo.seed": number(0, 2**31 - 1, integer=True),
        "demo.num_patients": number(10, None, integer=True),
        "demo.image_size": number(16, 4096, integer=True),
        "demo.arch": choice(*archs),
        "demo.resolution": number(16, 4096, integer=True),
        "demo.batch_size": number(1, None, integer=True),
        "demo.epochs": number(1, None, integer=True),
        "demo.num_workers": number(0, 256, integer=True),
    }


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


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError listing every unknown key, missing key and invalid value."""
    rules = _rules()
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
        if len(config.data.mean) != len(config.data.std):
            problems.append("config.data.mean and config.data.std must have one value per "
                            "channel each")
        problems += resolution_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)
