"""The run folder (`--workdir`): the name of every file a run writes, and how they are written.

    config.json          the full config of the run (checked when the run resumes)
    metrics.jsonl        one JSON record per log step / evaluation
    tensorboard/         TensorBoard event files
    checkpoints/<step>/  the latest checkpoints (Orbax: state, data iterator, metadata)
    best/<step>/         the checkpoint with the best validation metric
    train_images.csv     image and patient ids of the training set
    results.json         the final metrics; its presence means the run has finished
    predictions_<split>.npz   labels and scores of the best checkpoint per split
    features/<split>.npz      pooled backbone features (python -m jaxtl.features)
    explain/<split>_<method>/ attribution maps of the best checkpoint (python -m jaxtl.explain):
        maps.npz            the map of every explained image and target, with ids, labels,
                            targets and scores
        overlays/*.png      per image and target: the input and the map over it, boxes drawn
        index.html          the gallery: image, label, prediction, map
        localisation.json   the settings and the pointing game against the known regions
    sweep_run.json, sweep.log the sweep's record of the run and the run's output (jaxtl.sweep)

Files that others read are written atomically (`jaxtl.atomic`): a run killed while writing
leaves the previous version or none. Only the first host writes.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from jaxtl import atomic, configuration
from jaxtl.errors import UserError, WorkdirConflict

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
LATEST_DIR = "checkpoints"
BEST_DIR = "best"
TRAIN_IMAGES_FILE = "train_images.csv"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions_{split}.npz"
FEATURES_DIR = "features"
EXPLAIN_DIR = "explain"
EXPLAIN_MAPS_FILE = "maps.npz"
EXPLAIN_OVERLAYS_DIR = "overlays"
EXPLAIN_GALLERY_FILE = "index.html"
EXPLAIN_LOCALISATION_FILE = "localisation.json"
SWEEP_STATUS_FILE = "sweep_run.json"
SWEEP_LOG_FILE = "sweep.log"

# Settings that may change when a run is resumed: they do not change what is computed.
RESUMABLE_CHANGES = ("data.num_workers", "data.prefetch_batches", "data.cache_dir",
                     "train.log_every_steps")


def predictions_file(workdir: pathlib.Path, split: str) -> pathlib.Path:
    return workdir / PREDICTIONS_FILE.format(split=split)


def explanation_dir(workdir: pathlib.Path, split: str, method: str) -> pathlib.Path:
    return workdir / EXPLAIN_DIR / f"{split}_{method}"


def explanation_dirs(workdir: pathlib.Path, split: str) -> list[pathlib.Path]:
    """The finished explanations of a split (one folder per method), sorted by method."""
    found = pathlib.Path(workdir).glob(str(explanation_dir(pathlib.Path(), split, "*")))
    return sorted(folder for folder in found if (folder / EXPLAIN_LOCALISATION_FILE).is_file())


def read_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
    """The config a run was trained with (its config.json)."""
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{workdir} is not a jaxtl run folder: it has no {CONFIG_FILE}; pass "
                        f"the --workdir of a training run (python -m jaxtl.main)")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def is_finished(workdir: pathlib.Path) -> bool:
    """A run has finished when its results.json is complete (written atomically, last)."""
    return read_results(workdir) is not None


def read_results(workdir: pathlib.Path) -> dict[str, Any] | None:
    """results.json, or None when there is none or it is not a complete JSON object."""
    try:
        results = json.loads((workdir / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def write_results(workdir: pathlib.Path, results: dict[str, Any]) -> pathlib.Path:
    return atomic.write_json(workdir / RESULTS_FILE, results, indent=2, default=list)


def write_config(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> pathlib.Path:
    return atomic.write_text(workdir / CONFIG_FILE, configuration.to_json(config))


def write_training_set(workdir: pathlib.Path, image_ids: Sequence[str],
                       patients: Sequence[str]) -> pathlib.Path:
    """The image and patient ids of the training set (after the per-class cap)."""
    lines = ["image_id,patient"] + [f"{i},{p}" for i, p in zip(image_ids, patients)]
    return atomic.write_text(workdir / TRAIN_IMAGES_FILE, "\n".join(lines) + "\n")


def save_predictions(workdir: pathlib.Path, split: str, *, labels: np.ndarray,
                     scores: np.ndarray, names: Sequence[str]) -> pathlib.Path:
    return atomic.save_npz(predictions_file(workdir, split), compressed=True, labels=labels,
                           scores=scores.astype(np.float32), names=np.array(names))


def has_checkpoints(workdir: pathlib.Path) -> bool:
    return any(p.name.isdigit() for p in (workdir / LATEST_DIR).glob("*"))


def check_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict,
                  write: bool) -> None:
    """Writes config.json for a new run (when `write`: the first host); a run with checkpoints
    must keep its config, except for the `RESUMABLE_CHANGES`."""
    path = workdir / CONFIG_FILE
    if not path.exists() or not has_checkpoints(workdir):
        if write:
            write_config(workdir, config)
        return
    current = dict(configuration.flatten(json.loads(configuration.to_json(config))))
    saved = dict(configuration.flatten(json.loads(path.read_text())))
    changed = [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
               for key in sorted(set(saved) | set(current))
               if saved.get(key) != current.get(key) and key not in RESUMABLE_CHANGES]
    if changed:
        raise WorkdirConflict(
            f"{workdir} holds a run with a different config ({'; '.join(changed)}); "
            f"use a new --workdir, or delete this one to start over")


def run_folder_of(path: pathlib.Path) -> pathlib.Path | None:
    """The run folder that holds `path` (a workdir or anything inside it), or None."""
    for folder in (path, *path.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None
