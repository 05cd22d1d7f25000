"""The in-memory form every dataset reader produces: image records grouped into splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from jaxtl.core.errors import DataError
from jaxtl.core.tasks import Task

SPLITS = ("train", "val", "test")
__all__ = ["SPLITS", "DataError", "Record", "DatasetSplits"]


@dataclasses.dataclass(frozen=True)
class Record:
    """One image: where it is, its label(s) and the patient it belongs to."""

    image_id: str  # stable id inside the dataset, e.g. "10_left"
    path: str  # where the image is (a file path, or what the dataset's decoder reads)
    label: int | tuple[int, ...]  # class index, or one value per label (see jaxtl.core.tasks)
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
    # Named parts of a split scored on their own as well, as indices into it: split -> name ->
    # indices (e.g. EyePACS's Kaggle test set: test -> {"Public": ..., "Private": ...}).
    subsets: Mapping[str, Mapping[str, Sequence[int]]] = dataclasses.field(default_factory=dict)
    # How raw labels became training and evaluation labels where the dataset has a choice
    # (chest: the uncertain-cell policy of training and of evaluation); recorded in results.json.
    label_policies: Mapping[str, str] = dataclasses.field(default_factory=dict)

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
