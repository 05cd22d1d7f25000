"""Which datasets jaxtl reads: each entry knows how to load its real layout and write its demo."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import ml_collections

from jaxtl.data.records import DatasetSplits


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    metrics: tuple[str, ...]  # validation metrics that may select the best checkpoint
    load: Callable[[pathlib.Path, ml_collections.ConfigDict, bool], DatasetSplits]
    write_demo: Callable[[pathlib.Path, ml_collections.ConfigDict], None]


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


_REGISTRY: dict[str, DatasetSpec] = {
    "eyepacs": DatasetSpec(name="eyepacs", channels=3, metrics=("kappa", "accuracy"),
                           load=_load_eyepacs, write_demo=_write_eyepacs_demo),
}


def names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}")
    return _REGISTRY[name]
