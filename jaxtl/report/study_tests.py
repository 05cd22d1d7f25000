"""The report's paired comparisons: at each training size, each pretraining source against
random initialisation and the sources against each other, on the same test images.

Each side is the configuration the main figure shows at that point (all its seeds); the
difference of the seed means is tested with `jaxtl.report.paired_runs` (DeLong for one label's
AUROC, clustered by patient where a patient has several images; else the paired patient
bootstrap), and Holm's correction runs over every comparison of the study. The interval and p-value hold the trained models fixed: they say how the difference
would change with other test patients, while the spread over seeds is shown beside them.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from collections.abc import Sequence

from jaxtl.core.errors import UserError
from jaxtl.metrics.multiple import holm
from jaxtl.report import paired_runs as comparison
from jaxtl.report import select

SAMPLES = 1000  # bootstrap resamples: p-values down to 0.002, enough for Holm over a few tests
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class PointComparison:
    size: str  # as the main table writes it: '10' or 'all'
    a: str  # pretraining sources
    b: str
    seeds: int  # runs on each side (the fewer, where they differ)
    seed_differences: tuple[float, ...]  # A - B seed by seed, where both have the same seeds
    result: comparison.Difference
    holm_p: float | None = None

    @property
    def holds(self) -> bool:
        return self.holm_p is not None and self.holm_p < ALPHA


def _pairs(sources: Sequence[str]) -> list[tuple[str, str]]:
    others = sorted(s for s in sources if s != select.NO_PRETRAINING)
    pairs = [(s, select.NO_PRETRAINING) for s in others if select.NO_PRETRAINING in sources]
    return pairs + list(itertools.combinations(others, 2))


def study_comparisons(sweep_dir: pathlib.Path, study: select.Study,
                      samples: int = SAMPLES) -> tuple[list[PointComparison], list[str]]:
    """The comparisons of a study (Holm-adjusted) and notes on those that could not be made."""
    lines = select.series(list(study.rows), study)
    by_run = {row["run"]: row for row in study.rows}
    cells: dict[float, dict[str, select.Point]] = {}
    for line, points in lines.items():
        for point in points:
            cells.setdefault(point.x, {})[line] = point
    found: list[PointComparison] = []
    notes: list[str] = []
    for x, at in sorted(cells.items()):
        for a, b in _pairs(list(at)):
            point_a, point_b = at[a], at[b]
            size = "all" if point_a.all_images else f"{x:g}"
            try:
                sides = [[comparison.load(sweep_dir / str(by_run[run]["workdir"]), study.split)
                          for run in point.runs] for point in (point_a, point_b)]
                (result,) = comparison.compare(*sides, [study.metric], samples=samples, seed=0)
            except UserError as error:
                notes.append(f"{a} - {b} at {size}: {error}")
                continue
            same_seeds = len(point_a.values) == len(point_b.values)
            found.append(PointComparison(
                size=size, a=a, b=b, seeds=min(len(point_a.runs), len(point_b.runs)),
                seed_differences=tuple(va - vb for va, vb in zip(point_a.values, point_b.values))
                if same_seeds else (), result=result))
    tested = [i for i, c in enumerate(found) if c.result.p_value is not None]
    adjusted = holm([found[i].result.p_value for i in tested])
    for i, p in zip(tested, adjusted):
        found[i] = dataclasses.replace(found[i], holm_p=p)
    return found, notes


def summary(found: Sequence[PointComparison], metric: str) -> str:
    """One sentence on which differences hold after Holm's correction."""
    if not found:
        return "No comparison could be made."
    holding = [c for c in found if c.holds]
    lead = (f"After Holm's correction over the {len(found)} comparisons of this study, "
            f"at the {100 * ALPHA:g}% level, ")
    if not holding:
        return lead + f"no difference in {metric} holds."
    parts = [f"{c.a} - {c.b} at {c.size} images per class ({c.result.difference:+.3f}, "
             f"Holm p {comparison.p_text(c.holm_p)})" for c in holding]
    rest = len(found) - len(holding)
    return (lead + f"these differences in {metric} hold: " + "; ".join(parts) + "."
            + (f" The other {rest} do not." if rest else ""))
