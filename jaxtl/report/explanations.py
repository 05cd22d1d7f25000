"""What the report shows of a run's explanations (`python -m jaxtl.explain`, read from
`explain/<split>_<method>/` of the run folder): the pointing game against a random map's where
the findings' regions are known, and the overlays of the split's first images, which are the
same images in every run of a study, so pretraining sources can be compared on where they look.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from jaxtl.workdir import files as rundir

OVERLAYS_PER_RUN = 3


@dataclasses.dataclass(frozen=True)
class Explanation:
    folder: pathlib.Path
    summary: Mapping[str, Any]  # the folder's localisation.json

    @property
    def method(self) -> str:
        return str(self.summary.get("method", self.folder.name))

    @property
    def scores(self) -> Mapping[str, Any]:
        """The pointing game over every explained image and target with regions."""
        return self.summary.get("localisation", {}).get("overall", {})

    @property
    def not_scored(self) -> str | None:
        return self.summary.get("not_scored")

    def overlays(self, count: int = OVERLAYS_PER_RUN) -> list[pathlib.Path]:
        """The first `count` overlay PNGs, in the split's order."""
        return sorted((self.folder / rundir.EXPLAIN_OVERLAYS_DIR).glob("*.png"))[:count]


def of_run(workdir: pathlib.Path, split: str) -> list[Explanation]:
    """The run's finished explanations of `split`, one per method."""
    return [Explanation(folder, json.loads((folder / rundir.EXPLAIN_LOCALISATION_FILE).read_text()))
            for folder in rundir.explanation_dirs(workdir, split)]
