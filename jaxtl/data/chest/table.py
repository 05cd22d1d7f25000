"""The table both chest X-ray readers produce: one row per image, raw label values per label."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ChestTable:
    image_ids: list[str]  # stable id: the path relative to the dataset root
    paths: list[str]  # absolute image paths (not checked here)
    patients: list[str]
    studies: list[str]
    frontal: np.ndarray  # bool
    view: list[str]  # AP, PA, LL, RL or ''
    sex: list[str]
    age: np.ndarray  # years; NaN unknown
    labels: dict[str, np.ndarray]  # raw: 1.0, 0.0, -1.0, NaN (empty)
    source: list[str]  # which file the row came from (e.g. train, valid, test_list)

    def __len__(self) -> int:
        return len(self.image_ids)

    def take(self, keep: np.ndarray) -> ChestTable:
        """The rows where `keep` (bool array) is true, in order."""
        index = np.flatnonzero(keep)
        pick = lambda values: [values[i] for i in index]  # noqa: E731
        return ChestTable(
            image_ids=pick(self.image_ids), paths=pick(self.paths),
            patients=pick(self.patients), studies=pick(self.studies),
            frontal=self.frontal[index], view=pick(self.view), sex=pick(self.sex),
            age=self.age[index], labels={k: v[index] for k, v in self.labels.items()},
            source=pick(self.source))

    @staticmethod
    def concat(tables: list[ChestTable]) -> ChestTable:
        first = tables[0]
        return ChestTable(
            image_ids=sum((t.image_ids for t in tables), []),
            paths=sum((t.paths for t in tables), []),
            patients=sum((t.patients for t in tables), []),
            studies=sum((t.studies for t in tables), []),
            frontal=np.concatenate([t.frontal for t in tables]),
            view=sum((t.view for t in tables), []), sex=sum((t.sex for t in tables), []),
            age=np.concatenate([t.age for t in tables]),
            labels={k: np.concatenate([t.labels[k] for t in tables]) for k in first.labels},
            source=sum((t.source for t in tables), []))
