"""From a sweep file to the ordered list of runs: names, filters, configs, dependencies.

Every selected run's config is built and validated here, in this process, before anything is
launched: a typo in a sweep file fails at once for all runs, not one run after another.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import hashlib
import itertools
import json
import operator
import pathlib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.config.base import flatten
from jaxtl.config.files import load_module, split_spec
from jaxtl.core.errors import ConfigError, UserError
from jaxtl.core.settings import unknown_setting
from jaxtl.data import loading, registry
from jaxtl.engine import hub
from jaxtl.sweep.grid import CONFIG_KEY, INIT_KEY, NO_INIT, RUN_PREFIX, Overrides, Sweep, SweepError

GRID, SOURCE = "grid", "source"
RESERVED_NAMES = ("report",)
MAX_NAME_LENGTH = 200  # folder names; longer ones end in a hash
# Short names of common keys in folder names (other keys use their last component).
NAME_ALIASES = {"data.train_per_class": "n", "data.resolution": "res", "data.batch_size": "batch",
                "data.augment": "aug", "optim.name": "optim", "optim.schedule": "sched",
                "model.arch": "arch", "model.init": "init"}
# where the data is, not what the run is: never in folder names
UNNAMED_KEYS = (*registry.LOCATION_KEYS, "data.prepared")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]+")
_MISSING = object()  # a key a run does not set


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep, ready to launch."""

    name: str  # folder name under the sweep's workdir
    role: str  # GRID (compared in the report) or SOURCE (others start from it)
    config_file: str  # base config file (`file.py` or `file.py:arg`)
    own: Overrides  # the run's overrides as the sweep file writes them (names, --only, labels)
    overrides: Overrides  # passed as --config.KEY=VALUE: fixed + own, placeholders filled
    needs: tuple[str, ...]  # runs that must finish first (model.init="run:NAME")
    pretrain: str  # the pretraining source as the sweep names it: none, a run, a folder
    effective: dict[str, Any]  # the flattened config the run trains with (demo settings applied)
    workdir: pathlib.Path

    def command(self) -> list[str]:
        """The `python -m jaxtl.main` command line of this run."""
        flags = [f"--config.{key}={flag_value(value)}" for key, value in self.overrides.items()]
        return [sys.executable, "-m", "jaxtl.main", "--config", self.config_file,
                "--workdir", str(self.workdir), *flags]

    def record(self) -> dict[str, Any]:
        """What the sweep stores about the run next to it (sweep_run.json)."""
        return {"name": self.name, "role": self.role, "config_file": self.config_file,
                "own": self.own, "overrides": self.overrides, "needs": list(self.needs),
                "pretrain": self.pretrain, "effective": self.effective,
                "command": self.command()}


# --- Loading files ----------------------------------------------------------------------------
def load_sweep(spec: str) -> Sweep:
    """Calls `get_sweep(arg)` of a sweep file given as `path.py` or `path.py:arg`."""
    path, arg = split_spec(spec)
    if not pathlib.Path(path).is_file():
        raise SweepError(f"sweep file {path} does not exist; check the path (it is relative "
                         f"to the folder you run from, usually the repository root)")
    module = load_module(path, "sweep file")
    if not hasattr(module, "get_sweep"):
        raise SweepError(f"sweep file {path} defines no get_sweep(arg) function returning a "
                         f"jaxtl.sweep.Sweep")
    sweep = module.get_sweep(arg)
    if not isinstance(sweep, Sweep):
        raise SweepError(f"get_sweep() of {path} returned {type(sweep).__name__}; it must "
                         f"return a jaxtl.sweep.Sweep")
    return sweep


class ConfigLoader:
    """Base configs by file spec, each built once (`get_config(arg)`); each call returns a
    fresh copy."""

    def __init__(self) -> None:
        self._modules: dict[str, Any] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    def load(self, spec: str, needed_by: str) -> ml_collections.ConfigDict:
        if spec not in self._configs:
            path, arg = split_spec(spec)
            if path not in self._modules:
                if not pathlib.Path(path).is_file():
                    raise SweepError(f"run {needed_by} uses config {path}, which does not "
                                     f"exist; fix the sweep file, or leave those runs out "
                                     f"with --only")
                self._modules[path] = load_module(path)
            self._configs[spec] = self._modules[path].get_config(arg).to_dict()
        # a copy the run may change, lists and all
        return ml_collections.ConfigDict(copy.deepcopy(self._configs[spec]))


# --- Names ------------------------------------------------------------------------------------
def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each key's alias or last component; the whole key where two keys would share a name."""
    keys = [key for key in dict.fromkeys(keys) if key not in UNNAMED_KEYS]
    last = [NAME_ALIASES.get(key, key.rsplit(".", 1)[-1]) for key in keys]
    return {key: (tail if last.count(tail) == 1 else key) for key, tail in zip(keys, last)}


def name_value(key: str, value: Any) -> str:
    """A value as it appears in a folder name."""
    try:
        return _cached_name_value(key, value, repr(value))
    except TypeError:  # unhashable (a list)
        return _name_value(key, value)


@functools.lru_cache(maxsize=1 << 16)  # a study grid names a million runs
def _cached_name_value(key: str, value: Any, value_repr: str) -> str:
    del value_repr  # in the cache key only: (1,) == (True,) but they name differently
    return _name_value(key, value)


def _inner_config(spec: str) -> str | None:
    """The config file a recipe's argument names (configs/recipes/x.py:configs/eyepacs.py ->
    configs/eyepacs.py), else None."""
    arg = split_spec(spec)[1]
    return arg if arg and split_spec(arg)[0].endswith(".py") else None


def _name_value(key: str, value: Any) -> str:
    if key == CONFIG_KEY:
        path, arg = split_spec(str(value))
        inner = _inner_config(str(value))  # a recipe: its name, then its dataset config's
        text = pathlib.Path(path).stem + (f"-{_name_value(key, inner)}" if inner
                                          else f"-{arg}" if arg else "")
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = format(value, "g")
    elif isinstance(value, (tuple, list)):
        text = "-".join(name_value(key, v) for v in value)
    else:
        text = str(value)
        if key == INIT_KEY and text.startswith(RUN_PREFIX):
            text = text[len(RUN_PREFIX):]
        # What precedes the first placeholder: the placeholders' values are the run's other
        # settings, in the name already ("run:pre-{model.arch}" -> "pre").
        text = text.split("{", 1)[0].replace(",", "+").replace("/", "-")
    text = re.sub("-+", "-", _UNSAFE.sub("-", text))
    if isinstance(value, (int, float)):
        return text  # keeps the sign of -1
    return text.strip("-.") or "empty"


class NameParts:
    """The "key=value" text of each (key, id(value)) of the runs named so far, for naming many
    runs whose values are shared objects (a grid's axes: a million runs share a few hundred
    values). It holds each value too, so that no id is reused while it lives."""

    def __init__(self) -> None:
        self.texts: dict[tuple[str, int], str] = {}  # "" for a key never in folder names
        self._held: list[Any] = []

    def add(self, own: Mapping[str, Any], keys: Mapping[str, str]) -> None:
        for key, value in own.items():
            if (key, id(value)) not in self.texts:
                self._held.append(value)
                self.texts[key, id(value)] = ("" if key in UNNAMED_KEYS
                                              else f"{keys[key]}={name_value(key, value)}")


def run_name(own: Mapping[str, Any], keys: Mapping[str, str],
             parts: NameParts | None = None) -> str:
    """The folder name of a run with overrides `own`; `parts` caches the texts of its values
    across many runs."""
    if parts is None:
        parts = NameParts()
    texts = parts.texts
    try:  # one pass in C over the run's items, the common case of a grid's many runs
        name = ",".join(filter(None, map(texts.__getitem__, zip(own, map(id, own.values())))))
    except KeyError:
        parts.add(own, keys)
        name = ",".join(filter(None, map(texts.__getitem__, zip(own, map(id, own.values())))))
    name = name or "base"
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name[:MAX_NAME_LENGTH - 11] + "-" + digest
    return name


# --- Config of one run ------------------------------------------------------------------------
def set_value(config: ml_collections.ConfigDict, key: str, value: Any, run: str) -> None:
    *sections, leaf = key.split(".")
    node = config
    for section in sections:
        if not isinstance(node, ml_collections.ConfigDict) or section not in node:
            raise ConfigError(f"run {run}: {unknown_setting(key, dict(flatten(config)))}")
        node = node[section]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise ConfigError(f"run {run}: {unknown_setting(key, dict(flatten(config)))}")
    if isinstance(node[leaf], tuple) and isinstance(value, list):
        value = tuple(value)
    try:
        node[leaf] = value
    except TypeError as error:
        raise ConfigError(f"run {run}: config.{key}={value!r} has the wrong type "
                          f"({error})") from None


def flag_value(value: Any) -> str:
    """A value as ml_collections parses it back from --config.KEY=VALUE."""
    if isinstance(value, (tuple, list)):
        return repr(tuple(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def fill_placeholders(value: Any, key: str, flat: Mapping[str, Any], run: str) -> Any:
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name == key or name not in flat:
            raise SweepError(f"run {run}: {key}={value!r} names {{{name}}}, which is not another "
                             f"setting of the run's config")
        return name_value(name, flat[name])

    return _PLACEHOLDER.sub(replace, value)


def _flat(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return dict(configuration.flatten(json.loads(configuration.to_json(config))))


@dataclasses.dataclass(frozen=True)
class _Candidate:
    name: str
    role: str
    config_file: str
    own: Overrides


def resolve(candidate: _Candidate, sweep: Sweep, sweep_dir: pathlib.Path,
            loader: ConfigLoader) -> PlannedRun:
    """Builds and validates the run's config; finds the run it starts from."""
    name = candidate.name
    raw = {**dict(sweep.fixed), **candidate.own}
    raw.pop(CONFIG_KEY, None)
    config = loader.load(candidate.config_file, name)
    for key, value in raw.items():
        set_value(config, key, value, name)
    replaced = demo.replaced(config, raw)
    demo.apply(config)
    after_demo = _flat(config)
    if replaced:
        raise ConfigError(
            f"run {name}: the sweep sets {', '.join(replaced)}, but this run has no "
            f"{loading.location_key(config.dataset)}, "
            f"so the demo replaces {'it' if len(replaced) == 1 else 'them'} with the "
            f"config.demo settings; sweep the demo.* keys for demo data, or set "
            f"{loading.location_key(config.dataset)}")
    overrides: Overrides = {}
    for key, value in raw.items():
        overrides[key] = fill_placeholders(value, key, after_demo, name)
    needs: list[str] = []
    raw_init = raw.get(INIT_KEY, after_demo[INIT_KEY] or NO_INIT)
    init = overrides.get(INIT_KEY)
    if isinstance(init, str):
        if init == NO_INIT:
            overrides[INIT_KEY] = ""
        elif init.startswith(RUN_PREFIX):
            needs.append(init[len(RUN_PREFIX):])
            overrides[INIT_KEY] = str(sweep_dir / needs[-1])
        elif init and not hub.is_reference(init):  # a hub reference is no path
            overrides[INIT_KEY] = str(pathlib.Path(init).expanduser().resolve())
    for key, value in overrides.items():
        if value != raw[key]:  # placeholders filled, model.init resolved
            set_value(config, key, value, name)
    try:
        configuration.validate(config)
    except ConfigError as error:
        raise ConfigError(f"run {name}: {error}") from None
    pretrain = name_value(INIT_KEY, raw_init)
    return PlannedRun(name=name, role=candidate.role, config_file=candidate.config_file,
                      own=dict(candidate.own), overrides=overrides, needs=tuple(needs),
                      pretrain=pretrain, effective=_flat(config),
                      workdir=sweep_dir / name)


def run_config(run: PlannedRun, loader: ConfigLoader | None = None) -> ml_collections.ConfigDict:
    """The config `run` trains with, as `resolve` built it: its file, the sweep's overrides
    and the demo settings where it has no data, validated."""
    config = (loader or ConfigLoader()).load(run.config_file, run.name)
    for key, value in run.overrides.items():
        set_value(config, key, value, run.name)
    demo.apply(config)
    configuration.validate(config)
    return config


# --- Selection and order ----------------------------------------------------------------------
def parse_only(only: Sequence[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in only:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SweepError(f"--only {item!r}: expected key=value, e.g. "
                             f"--only data.train_per_class=10 or --only run=NAME")
        filters.setdefault(key.removeprefix("config.") if key != CONFIG_KEY else key,
                           []).append(value)
    return filters


def _matches(key: str, value: Any, wanted: str) -> bool:
    """Whether a run's override equals --only's text, as written or as in folder names."""
    try:
        return _cached_matches(key, value, repr(value), wanted)
    except TypeError:  # unhashable (a list)
        return _uncached_matches(key, value, wanted)


@functools.lru_cache(maxsize=1 << 16)
def _cached_matches(key: str, value: Any, value_repr: str, wanted: str) -> bool:
    del value_repr  # in the cache key only
    return _uncached_matches(key, value, wanted)


def _uncached_matches(key: str, value: Any, wanted: str) -> bool:
    if wanted in (str(value), name_value(key, value)):
        return True
    if key == INIT_KEY and wanted.startswith(RUN_PREFIX):
        return wanted[len(RUN_PREFIX):] == name_value(key, value)
    if key == CONFIG_KEY:
        inner = _inner_config(str(value))  # a recipe's runs: selected by their dataset too
        if inner is not None and _uncached_matches(key, inner, wanted):
            return True
        return pathlib.Path(split_spec(wanted)[0]).resolve() == \
            pathlib.Path(split_spec(str(value))[0]).resolve()
    try:
        return ast.literal_eval(wanted) == value
    except (ValueError, SyntaxError):
        return False


def _select(grid: Sequence[Mapping[str, Any]], names: Sequence[str], sources: list[PlannedRun],
            filters: dict[str, list[str]], keys: Sequence[str]) -> tuple[list[int], list[str]]:
    """The indices of the grid runs (named `names`, setting `keys`) the filters keep, and the
    source names they select by run=NAME."""
    if not filters:
        return list(range(len(grid))), []
    known = set(keys)
    unknown = [key for key in filters if key != "run" and key not in known]
    if unknown:
        raise SweepError(f"--only {', '.join(unknown)}: no run of the sweep sets "
                         f"{'it' if len(unknown) == 1 else 'them'}; keys you can filter on: "
                         f"run, {', '.join(sorted(known))}")
    wanted_names = set(filters.get("run", []))
    all_names = set(names) | {run.name for run in sources} if wanted_names else set()
    unknown_names = [name for name in filters.get("run", []) if name not in all_names]
    if unknown_names:
        raise SweepError(f"--only run={unknown_names[0]}: the sweep has no run of that name; "
                         f"python -m jaxtl.sweep ... --dry-run lists them")
    source_names = [run.name for run in sources if run.name in wanted_names]
    kept: Sequence[int] = range(len(grid))
    if wanted_names:
        kept = [index for index, name in enumerate(names) if name in wanted_names]
    # One key at a time over the runs the previous keys kept, each run's value looked up in C;
    # a value's verdict is found once per distinct object (a grid's runs share their axes'
    # value objects, which `found` holds while their ids are used).
    for key, values in filters.items():
        if key == "run":
            continue
        found = list(map(operator.methodcaller("get", key, _MISSING),
                         map(grid.__getitem__, kept)))
        verdicts = {ident: value is not _MISSING
                    and any(_matches(key, value, wanted) for wanted in values)
                    for ident, value in dict(zip(map(id, found), found)).items()}
        kept = list(itertools.compress(kept, map(verdicts.__getitem__, map(id, found))))
    kept = list(kept)
    if not kept and not source_names:
        raise SweepError(f"--only {' '.join(f'{k}={v}' for k, vs in filters.items() for v in vs)}"
                         f" selects no run; python -m jaxtl.sweep ... --dry-run lists them all")
    return kept, source_names


def _ordered(runs: dict[str, PlannedRun]) -> list[PlannedRun]:
    """Dependencies first, otherwise in the sweep file's order; refuses cycles."""
    order, placed, visiting = [], set(), []

    def visit(name: str) -> None:
        if name in placed:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name):] + [name])
            raise SweepError(f"the sweep's runs start from each other in a cycle: {cycle}")
        visiting.append(name)
        for need in runs[name].needs:
            visit(need)
        visiting.pop()
        placed.add(name)
        order.append(runs[name])

    for name in runs:
        visit(name)
    return order


def grid_keys(sweep: Sweep) -> list[str]:
    """The keys the runs of the sweep's grid set, in order of appearance."""
    if "keys" not in sweep.derived:
        sweep.derived["keys"] = list(dict.fromkeys(itertools.chain.from_iterable(sweep.grid)))
    return sweep.derived["keys"]


def grid_names(sweep: Sweep) -> list[str]:
    """The folder names of the runs of the sweep's grid, checked to be unique."""
    if "names" not in sweep.derived:
        keys = short_keys(grid_keys(sweep))
        parts = NameParts()  # "key=value" texts, built once
        names = [run_name(own, keys, parts) for own in sweep.grid]
        _check_unique(names, "grid")
        sweep.derived["names"] = names
    return sweep.derived["names"]


def plan(sweep: Sweep, sweep_dir: pathlib.Path, only: Sequence[str] = ()) -> list[PlannedRun]:
    """The runs to do, dependencies first. Raises SweepError / ConfigError for any problem."""
    sweep_dir = pathlib.Path(sweep_dir).resolve()
    loader = ConfigLoader()
    names = grid_names(sweep)

    sources: list[PlannedRun] = []
    unavailable: list[str] = []  # sources that cannot be built: an error only where needed
    for template, source_grid in sweep.sources.items():
        for own in source_grid:
            own = dict(own)
            candidate = _Candidate(template, SOURCE, str(own.get(CONFIG_KEY, sweep.config)), own)
            try:
                provisional = resolve(candidate, sweep, sweep_dir, loader)
            except UserError as error:
                unavailable.append(str(error))
                continue
            name = name_value("", fill_placeholders(template, "", provisional.effective, template))
            sources.append(dataclasses.replace(provisional, name=name,
                                               workdir=sweep_dir / name))
    source_run_names = {run.name for run in sources}
    # The grid's names are unique already: a clash is between sources or with a grid run.
    _check_unique([run.name for run in sources]
                  + list(source_run_names.intersection(names)), "source and grid")

    kept, source_names = _select(sweep.grid, names, sources, parse_only(only),
                                 grid_keys(sweep))
    selected = [_Candidate(names[index], GRID, str(sweep.grid[index].get(CONFIG_KEY, sweep.config)),
                           dict(sweep.grid[index])) for index in kept]
    runs = {run.name: resolve(run, sweep, sweep_dir, loader) for run in selected}
    available = {run.name: run for run in sources} | runs
    pending = [*runs.values(), *(available[name] for name in source_names)]
    for name in source_names:
        runs[name] = available[name]
    while pending:
        run = pending.pop()
        for need in run.needs:
            if need not in available:
                source_names = ", ".join(sorted(r.name for r in sources)) or "none"
                reasons = "".join(f"\n  {reason}" for reason in dict.fromkeys(unavailable))
                detail = (f"sources that could not be built:{reasons}" if unavailable
                          else f"its sources are: {source_names}")
                raise SweepError(f"run {run.name} starts from run {need!r}, which the sweep does "
                                 f"not define; {detail}")
            if need not in runs:
                runs[need] = available[need]
                pending.append(runs[need])
    source_first = {run.name: run for run in sources if run.name in runs}
    source_first |= {name: run for name, run in runs.items() if name not in source_first}
    return _ordered(source_first)


def _check_unique(names: list[str], what: str) -> None:
    unique = set(names)
    if len(unique) < len(names):
        seen: set[str] = set()
        clashes = {name for name in names if name in seen or seen.add(name)}
        raise SweepError(f"two {what} runs share a folder name ({', '.join(sorted(clashes))}): "
                         f"each run needs overrides that tell it apart")
    if not unique.isdisjoint(RESERVED_NAMES):
        reserved = [name for name in names if name in RESERVED_NAMES]
        raise SweepError(f"run name {reserved[0]!r} is reserved for the sweep's own files")
