"""Which datasets jaxtl reads: each entry knows how to load its real layout and write its demo.

A spec also brings the config rules of its own keys: `data.task` (which tasks the dataset
offers) and the keys of its section (e.g. `config.chest`), plus `check(config)` for rules that
involve several keys. `jaxtl.configuration.validate` applies them with the common rules.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping

import ml_collections

from jaxtl.config_rules import Rule, choice
from jaxtl.data.records import DatasetSplits

Loader = Callable[[pathlib.Path, ml_collections.ConfigDict, bool], DatasetSplits]


def _no_checks(config: ml_collections.ConfigDict) -> list[str]:
    del config
    return []


def _files_checked_on_load(root: pathlib.Path, splits: DatasetSplits) -> DatasetSplits:
    del root
    return splits


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    metrics: tuple[str, ...]  # validation metrics that may select the best checkpoint
    load: Loader  # (root, config, demo) -> splits; must not open image files
    write_demo: Callable[[pathlib.Path, ml_collections.ConfigDict], None]
    rules: Mapping[str, Rule]  # "data.task" and the dataset's own keys
    check: Callable[[ml_collections.ConfigDict], list[str]] = _no_checks
    # (root, splits after sampling) -> splits whose image files exist; a clear error otherwise.
    # Training calls it; `python -m jaxtl.data.stats` does not (it reads label files only).
    resolve_files: Callable[[pathlib.Path, DatasetSplits], DatasetSplits] = _files_checked_on_load


def _load_eyepacs(root: pathlib.Path, config: ml_collections.ConfigDict,
                  demo: bool) -> DatasetSplits:
    from jaxtl.data import eyepacs

    return eyepacs.load(root, val_fraction=config.data.val_fraction,
                        test_fraction=config.data.test_fraction,
                        split_seed=config.data.split_seed, demo=demo)


def _write_eyepacs_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    from jaxtl.data import eyepacs_demo

    eyepacs_demo.write_demo_dataset(root, num_patients=config.demo.num_patients,
                                    image_size=config.demo.image_size, seed=config.demo.seed)


def _eyepacs_checks(config: ml_collections.ConfigDict) -> list[str]:
    return ([] if config.data.channels in (1, 3) else
            [f"data.channels is {config.data.channels}; EyePACS photographs load as 3 (RGB) "
             f"or 1 (grey) channels"])


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


register(DatasetSpec(name="eyepacs", metrics=("kappa", "accuracy", "macro_f1"),
                     load=_load_eyepacs, write_demo=_write_eyepacs_demo,
                     rules={"data.task": choice("grade")}, check=_eyepacs_checks))


def _chest_spec(name: str) -> DatasetSpec:
    from jaxtl.data import chest

    def load(root: pathlib.Path, config: ml_collections.ConfigDict,
             demo: bool) -> DatasetSplits:
        return chest.load(name, root, config, demo)

    def write_demo(root: pathlib.Path, config: ml_collections.ConfigDict) -> None:
        from jaxtl.data import chest_demo

        chest_demo.write_demo_dataset(name, root, num_patients=config.demo.num_patients,
                                      image_size=config.demo.image_size, seed=config.demo.seed)

    def resolve_files(root: pathlib.Path, splits: DatasetSplits) -> DatasetSplits:
        return chest.resolve_files(name, root, splits)

    return DatasetSpec(name=name, metrics=("mean_auroc", "mean_ap"), load=load,
                       write_demo=write_demo, rules=chest.rules(name), check=chest.check,
                       resolve_files=resolve_files)


register(_chest_spec("chexpert"))
register(_chest_spec("cxr14"))


def names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}")
    return _REGISTRY[name]
