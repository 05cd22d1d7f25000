"""The in-memory form every dataset reader produces: image records grouped into splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jaxtl.errors import DataError
from jaxtl.tasks import Task

SPLITS = ("train", "val", "test")
__all__ = ["SPLITS", "DataError", "Record", "DatasetSplits"]


@dataclasses.dataclass(frozen=True)
class Record:
    """One image: where it is, its label(s) and the patient it belongs to."""

    image_id: str  # stable id inside the dataset, e.g. "10_left"
    path: str  # where the image is (a file path, or what the dataset's decoder reads)
    label: int | tuple[int, ...]  # class index, or one value per label (see jaxtl.tasks)
    patient: str  # patient (or other grouping, e.g. tile) id; never shared between splits


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """Records of each split plus the task a model is trained on."""

    name: str
    task: Task
    train: Sequence[Record]
    val: Sequence[Record]
    test: Sequence[Record]
    demo: bool = False

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.task.names

    @property
    def num_classes(self) -> int:
        return len(self.task.names)

    def split(self, name: str) -> Sequence[Record]:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; choose one of {SPLITS}")
        return getattr(self, name)
