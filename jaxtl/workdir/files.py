"""The run folder (`--workdir`): the name of every file a run writes, and how they are written.

    config.json          the full config of the run (checked when the run resumes)
    metrics.jsonl        one JSON record per log step / evaluation
    tensorboard/         TensorBoard event files
    checkpoints/<step>/  the latest checkpoints (Orbax: state, data iterator, metadata);
                         removed when the run finishes unless train.keep_last_checkpoint
    best/<step>/         the checkpoint with the best validation metric (model variables)
    train_images.csv     image and patient ids of the training set
    results.json         the final metrics; its presence means the run has finished
    predictions_<split>.npz   labels, scores, image and patient ids of the best checkpoint
    features/<split>.npz      pooled backbone features (python -m jaxtl.commands.features)
    explain/<split>_<method>/ attribution maps of the best checkpoint (python -m jaxtl.explain):
        maps.npz            the map of every explained image and target, with ids, labels,
                            targets and scores
        overlays/*.png      per image and target: the input and the map over it, boxes drawn
        index.html          the gallery: image, label, prediction, map
        localisation.json   the settings and the pointing game against the known regions
    sweep_run.json, sweep.log the sweep's record of the run and the run's output (jaxtl.sweep)
    run.lock             while a process writes the run: its host and process id
    stopped_at.json      the unreadable image a run stopped at (data.bad_images=error)

Files that others read are written atomically (`jaxtl.core.atomic`): a run killed while writing
leaves the previous version or none. Only the first host writes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import ml_collections
import numpy as np

from jaxtl.config import validation as configuration
from jaxtl.config.base import base_config
from jaxtl.core import atomic
from jaxtl.core.errors import UserError, WorkdirConflict

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
LATEST_DIR = "checkpoints"
BEST_DIR = "best"
TRAIN_IMAGES_FILE = "train_images.csv"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions_{split}.npz"
SEGMENTATION_FILE = "segmentation_{split}.npz"  # predicted pixel classes per tile (uint8)
SEGMENTATION_OVERLAYS_DIR = "segmentation_overlays"  # <split>/<tile>.png: tile, truth, prediction
FEATURES_DIR = "features"
EXPLAIN_DIR = "explain"
EXPLAIN_MAPS_FILE = "maps.npz"
EXPLAIN_OVERLAYS_DIR = "overlays"
EXPLAIN_GALLERY_FILE = "index.html"
EXPLAIN_LOCALISATION_FILE = "localisation.json"
SWEEP_STATUS_FILE = "sweep_run.json"
SWEEP_LOG_FILE = "sweep.log"
LOCK_FILE = "run.lock"
UNWRITTEN_LOCK_SECONDS = 10.0  # an empty lock older than this was left by a killed process
STOPPED_AT_FILE = "stopped_at.json"

# Settings that may change when a run is resumed: they do not change what is computed, or (the
# bad-image policy) only from the image the run stopped at on. Not data.num_workers: the input
# pipeline's position is saved per worker process, and restores into as many.
RESUMABLE_CHANGES = ("data.prefetch_batches", "data.cache_dir", "data.bad_images",
                     "train.log_every_steps", "train.checkpoint_every_steps",
                     "train.checkpoint_every_minutes", "train.keep_last_checkpoint")


def predictions_file(workdir: pathlib.Path, split: str) -> pathlib.Path:
    return workdir / PREDICTIONS_FILE.format(split=split)


def segmentation_file(workdir: pathlib.Path, split: str) -> pathlib.Path:
    return workdir / SEGMENTATION_FILE.format(split=split)


def segmentation_overlays(workdir: pathlib.Path, split: str) -> list[pathlib.Path]:
    """The overlay PNGs a segmentation run drew for `split`, sorted by name."""
    return sorted((pathlib.Path(workdir) / SEGMENTATION_OVERLAYS_DIR / split).glob("*.png"))


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
    return ml_collections.ConfigDict(_saved_config(path))


def _saved_config(path: pathlib.Path) -> dict[str, Any]:
    """A run's config.json; the keys added to jaxtl since the run started (absent from its
    file) are filled in with their defaults, as the run ran."""
    saved = json.loads(path.read_text())
    defaults = json.loads(configuration.to_json(base_config(saved["dataset"])))

    def filled(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        return {**defaults, **{key: filled(value, defaults[key])
                               if isinstance(value, dict) and isinstance(defaults.get(key), dict)
                               else value for key, value in saved.items()}}

    return filled(saved, defaults)


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
                     scores: np.ndarray, names: Sequence[str], image_ids: Sequence[str],
                     patients: Sequence[str]) -> pathlib.Path:
    """Scores in float64, so that metrics recomputed from the file (jaxtl.commands.compare) equal
    results.json's."""
    return atomic.save_npz(predictions_file(workdir, split), compressed=True, labels=labels,
                           scores=scores.astype(np.float64), names=np.array(names),
                           image_ids=np.array(image_ids), patients=np.array(patients))


def has_checkpoints(workdir: pathlib.Path) -> bool:
    return any(p.name.isdigit() for p in (workdir / LATEST_DIR).glob("*"))


def holds_run(workdir: pathlib.Path) -> bool:
    """A run to resume, or a finished one (whose latest checkpoints may have been removed)."""
    return has_checkpoints(workdir) or is_finished(workdir)


def check_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict,
                  write: bool) -> None:
    """Writes config.json for a new run (when `write`: the first host); a run with checkpoints
    must keep its config, except for the `RESUMABLE_CHANGES`; so must a finished run."""
    path = workdir / CONFIG_FILE
    if not path.exists() or not holds_run(workdir):
        if write:
            write_config(workdir, config)
        return
    current = dict(configuration.flatten(json.loads(configuration.to_json(config))))
    saved = dict(configuration.flatten(_saved_config(path)))
    changed = [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
               for key in sorted(set(saved) | set(current))
               if saved.get(key) != current.get(key) and key not in RESUMABLE_CHANGES]
    if changed:
        workers = ("; the input pipeline's position was saved with "
                   f"data.num_workers={saved['data.num_workers']} worker processes and resumes "
                   f"only with as many" if saved.get("data.num_workers") !=
                   current.get("data.num_workers") else "")
        raise WorkdirConflict(
            f"{workdir} holds a run with a different config ({'; '.join(changed)}){workers}; "
            f"run the same command to resume it, use a new --workdir, or delete this one to "
            f"start over")


def saved_setting(workdir: pathlib.Path, key: str) -> Any | None:
    """The value of `key` (dotted) in the config of a run that has checkpoints to resume from
    or has finished; None for a new run."""
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file() or not holds_run(workdir):
        return None
    return dict(configuration.flatten(json.loads(path.read_text()))).get(key)


def run_folder_of(path: pathlib.Path) -> pathlib.Path | None:
    """The run folder that holds `path` (a workdir or anything inside it), or None."""
    for folder in (path, *path.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


# --- One writer per run folder ----------------------------------------------------------------

def _process_start(pid: int) -> str | None:
    """When process `pid` started (Linux clock ticks since boot), to tell a live process from
    a new one that reuses the id; None where /proc is not there or the process is gone."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict[str, Any]) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user holds this id
    started = _process_start(pid)
    return started is None or holder.get("process_start") in (None, started)


def unwritable(workdir: pathlib.Path, error: OSError) -> UserError:
    """The one message for a run folder that cannot be written (full disk, permissions)."""
    what = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
    where = error.filename or workdir
    return UserError(f"cannot write to the run folder {workdir}: {what} ({where}); earlier "
                     f"checkpoints are intact: free space or fix the folder and run the same "
                     f"command to resume")


@contextlib.contextmanager
def locked(workdir: pathlib.Path, enabled: bool = True) -> Iterator[None]:
    """Holds `run.lock` in `workdir` while the block runs (when `enabled`: the first host).

    A second process on the same folder is refused with the holder's host and process id; a
    lock left by a process that is gone (same host, no such process) is stale and taken over.
    """
    if not enabled:
        yield
        return
    path = workdir / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "process_start": _process_start(os.getpid()), "since": time.time()}
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                holder = _read_lock(path)
                if _stale(path, holder, me["host"]):
                    path.unlink(missing_ok=True)  # left by a killed process
                    continue
                raise WorkdirConflict(
                    f"{workdir} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host')} (since "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(holder.get('since', 0)))}"
                    f"): one run folder has one writer; wait for it, use another --workdir, "
                    f"or, if that process is gone, delete {path}") from None
        with os.fdopen(handle, "w") as out:
            json.dump(me, out)
    except OSError as error:
        raise unwritable(workdir, error) from None
    try:
        yield
    finally:
        if _read_lock(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)


def _stale(path: pathlib.Path, holder: dict[str, Any], host: str) -> bool:
    """A lock of a process on this host that is gone, or one that was never written and is
    older than a process needs to write it."""
    if not holder:
        try:
            return time.time() - path.stat().st_mtime > UNWRITTEN_LOCK_SECONDS
        except FileNotFoundError:
            return True
    return holder.get("host") == host and not _alive(holder)


def _read_lock(path: pathlib.Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written, or damaged: treated as held by nobody alive
    return holder if isinstance(holder, dict) else {}


# --- The unreadable image a run stopped at --------------------------------------------------

def write_stopped_at(workdir: pathlib.Path, error: Any) -> None:
    """Remembers the image an `UnreadableImage` stopped the run at."""
    atomic.write_json(workdir / STOPPED_AT_FILE, {"image_id": error.image_id, "path": error.path,
                                                  "error": str(error), "when": time.time()})


def read_stopped_at(workdir: pathlib.Path) -> dict[str, Any] | None:
    try:
        return json.loads((workdir / STOPPED_AT_FILE).read_text())
    except (OSError, ValueError):
        return None


def clear_stopped_at(workdir: pathlib.Path) -> None:
    (workdir / STOPPED_AT_FILE).unlink(missing_ok=True)
