"""The in-memory form every dataset reader produces: image records grouped into splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jaxtl.errors import DataError

SPLITS = ("train", "val", "test")
__all__ = ["SPLITS", "DataError", "Record", "DatasetSplits"]


@dataclasses.dataclass(frozen=True)
class Record:
    """One image: where it is, its label and the patient it belongs to."""

    image_id: str  # stable id inside the dataset, e.g. "10_left"
    path: str  # absolute path of the image file
    label: int  # class index
    patient: str  # patient (or other grouping) id; never shared between splits


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """Records of each split plus what a model needs to know about the task."""

    name: str
    class_names: tuple[str, ...]
    train: Sequence[Record]
    val: Sequence[Record]
    test: Sequence[Record]
    demo: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Sequence[Record]:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; choose one of {SPLITS}")
        return getattr(self, name)
