"""Grids of config overrides: what a sweep file (configs/sweeps/*.py) is made of.

A grid is a list of override dicts, one per run; each dict maps `'section.key'` to a value,
as `--config.section.key=value` would on the command line. Two keys are the sweep's own:

- `config`: the base config file of the run (e.g. `configs/eyepacs.py`, or `file.py:arg`), so a
  dataset axis can switch config families;
- `model.init` accepts `"none"` (random init), a folder (a converted checkpoint or any jaxtl
  workdir), a Hugging Face hub model (`"hf-hub:ORG/NAME"`) and `"run:NAME"`: the workdir of
  run NAME of the same sweep, which then runs first.

String values may hold `{section.key}` placeholders, filled from the run's own effective config
(e.g. `"run:pretrain-{model.arch}"` picks the pretraining run of the same architecture).

    grid = product(axis("data.train_per_class", [10, 100]),
                   [{"optim.name": "sgd", "optim.lr": 0.01}, {"optim.name": "adam", "optim.lr": 1e-3}])

is four runs; `a + b` (plain list concatenation) is the runs of both grids.

`seeds([0, 1, 2])` repeats a grid's runs with other seeds: `train.seed` (initialisation,
dropout, augmentation, batch order) and `data.sample_seed` (which images `data.train_per_class`
keeps) together. Runs that differ only in `SEED_KEYS` are one configuration to a report,
which shows their mean, spread and every seed's value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from jaxtl.core.errors import UserError

Overrides = dict[str, Any]
CONFIG_KEY = "config"  # selects the base config file of a run
INIT_KEY = "model.init"
RUN_PREFIX = "run:"  # model.init="run:NAME": start from run NAME of this sweep
NO_INIT = "none"
SEED_KEYS = ("train.seed", "data.sample_seed")


class SweepError(UserError):
    """A sweep file or a sweep command line is malformed."""


def axis(key: str, values: Sequence[Any]) -> list[Overrides]:
    """One run per value of `key`."""
    if isinstance(values, (str, bytes)) or not len(values):
        raise SweepError(f"axis {key!r} needs a non-empty list of values, got {values!r}")
    return [{key: value} for value in values]


def seeds(values: Sequence[int]) -> list[Overrides]:
    """One run per seed, setting every key of `SEED_KEYS` to it."""
    return [dict.fromkeys(SEED_KEYS, run["seed"]) for run in axis("seed", values)]


def named_paths(arg: str | None, names: Sequence[str], sweep_file: str) -> dict[str, str]:
    """A sweep file's argument 'a=/path,b=/other' -> {'a': '/path', 'b': '/other'}, every name
    one of `names` (data roots, checkpoint folders); SweepError naming `sweep_file` otherwise."""
    paths: dict[str, str] = {}
    for item in filter(None, (arg or "").split(",")):
        name, sep, path = item.partition("=")
        if not sep or name not in names:
            raise SweepError(f"{sweep_file} argument {item!r}: expected name=path with a name "
                             f"among {', '.join(names)}")
        paths[name] = path
    return paths


def product(*grids: Sequence[Mapping[str, Any]]) -> list[Overrides]:
    """Every combination of one entry of each grid, in order (the last grid varies fastest)."""
    combined: list[Overrides] = [{}]
    for grid in grids:
        if not len(grid):
            raise SweepError("product() got an empty grid: the product would have no runs")
        next_combined = []
        for left in combined:
            left_keys = left.keys()
            for right in grid:
                if not left_keys.isdisjoint(right):
                    shared = sorted(left_keys & right.keys())
                    raise SweepError(f"product() sets {', '.join(shared)} in two of its grids; "
                                     f"set each key in one grid only")
                next_combined.append({**left, **right})
        combined = next_combined
    return combined


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A study: a base config, the runs of its grid and the runs they start from.

    config:  base config file, used by runs whose overrides do not name one (`config` key).
    grid:    the runs the report compares; each run's folder is named after its own overrides.
    fixed:   overrides applied to every run (grid and sources) before the run's own; not part of
             folder names.
    sources: runs that others start from (`model.init="run:NAME"`), as {name template: grid}:
             `{"pretrain-{model.arch}": axis("model.arch", [...])}` names each run of the grid
             from its effective config. Only the sources that selected runs need are run.
    description: one paragraph for the report.
    """

    config: str
    grid: Sequence[Mapping[str, Any]]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, Sequence[Mapping[str, Any]]] = dataclasses.field(default_factory=dict)
    description: str = ""
    # What planning derives from the grid alone (its keys, its runs' folder names), kept for
    # the next plan of the same sweep: each --only slice of a million-run grid names them all.
    derived: dict[str, Any] = dataclasses.field(default_factory=dict, init=False, repr=False,
                                                compare=False)

    def __post_init__(self) -> None:
        if not self.grid:
            raise SweepError("the sweep's grid is empty: it needs at least one run")
        for name, grid in self.sources.items():
            if not grid:
                raise SweepError(f"source {name!r} has an empty grid; use [{{}}] for one run "
                                 f"with the fixed settings")
