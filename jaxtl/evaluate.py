"""Scores a trained run on another dataset's splits, e.g. a CheXpert model on ChestX-ray14:

    python -m jaxtl.evaluate --config configs/cxr14.py --checkpoint runs/chexpert \\
        --workdir runs/chexpert-on-cxr14 --config.data.task=competition5

The model (architecture, head, dtype, channels, resolution) and its variables, head included,
come from the checkpoint's run; the data, task and label policies come from --config. The
task's labels must be the run's labels in the same order: CXR14 findings can be named in
CheXpert terms through the documented mapping (jaxtl/data/chest_labels.py). Writes
`results.json` with the val and test metrics (bootstrap CIs by patient) to --workdir.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from jaxtl import __version__, configuration, demo, steps, transfer
from jaxtl.errors import TransferError, UserError



def _define_flags() -> dict[str, flags.FlagHolder]:
    """Only when run as a program, so importing this module defines no absl flags."""
    return {
        "config": config_flags.DEFINE_config_file(
            "config", None, "Config of the data to score on.", lock_config=True),
        "checkpoint": flags.DEFINE_string("checkpoint", None, "A jaxtl run's workdir (its "
                                          "best checkpoint is used) or one checkpoint folder."),
        "workdir": flags.DEFINE_string("workdir", None, "Where results.json is written."),
    }

MODEL_KEYS = ("model.arch", "model.head", "model.dropout", "model.dtype", "data.channels",
              "data.resolution", "data.mean", "data.std")


def source_run(checkpoint: pathlib.Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flattened config, results) of the run that wrote the checkpoint."""
    workdir = checkpoint
    while workdir != workdir.parent and not (workdir / "config.json").is_file():
        workdir = workdir.parent
    config_path, results_path = workdir / "config.json", workdir / "results.json"
    if not config_path.is_file() or not results_path.is_file():
        raise TransferError(f"{checkpoint} is not inside a finished jaxtl run: expected "
                            f"config.json and results.json in it or a folder above it")
    source = dict(configuration.flatten(json.loads(config_path.read_text())))
    return source, json.loads(results_path.read_text())


def adopt_model(config: ml_collections.ConfigDict, source: dict[str, Any]) -> None:
    for key in MODEL_KEYS:
        section, name = key.split(".")
        value = source[key]
        config[section][name] = tuple(value) if isinstance(value, list) else value


def evaluate_checkpoint(config: ml_collections.ConfigDict, checkpoint: str | pathlib.Path,
                        workdir: str | pathlib.Path) -> dict[str, Any]:
    from jaxtl import train  # builds the data, model and compiled steps as a run does

    checkpoint = pathlib.Path(checkpoint).expanduser().resolve()
    source, source_results = source_run(checkpoint)
    notes = demo.apply(config)
    adopt_model(config, source)
    configuration.validate(config)
    for note in notes:
        logging.info("%s", note)
    run, state = train.build(config)
    names = tuple(source_results["task"]["names"])
    if (run.splits.task.names != names
            or list(run.splits.task.three_way) != source_results["task"]["three_way"]):
        raise TransferError(
            f"the run in {checkpoint} predicts {', '.join(names)}; the {config.dataset} task "
            f"{config.data.task!r} has {', '.join(run.splits.task.names)}: set "
            f"--config.data.task to the run's labels in that order (and the same uncertainty "
            f"policies)")
    variables = transfer.load_variables(checkpoint)
    variables = jax.device_put(variables, steps.replicated(run.mesh))
    state = state.replace(params=variables["params"],
                          batch_stats=variables.get("batch_stats", {}))
    results = {
        "demo": not config.data.root,
        "dataset": run.splits.name,
        "checkpoint": str(checkpoint),
        "trained_on": source["dataset"],
        "jaxtl_version": __version__,
        "task": source_results["task"],
        "split_sizes": {name: len(run.splits.split(name)) for name in ("train", "val", "test")},
        "val": train.evaluate(run, state, run.splits.val, intervals=True),
        "test": (train.evaluate(run, state, run.splits.test, intervals=True)
                 if run.splits.test else None),
        "config": config.to_dict(),
    }
    workdir = pathlib.Path(workdir)
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=list))
    return results


def main(argv: list[str], options: dict[str, flags.FlagHolder]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        results = evaluate_checkpoint(options["config"].value, options["checkpoint"].value,
                                      options["workdir"].value)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for split in ("val", "test"):
        if results[split] is not None:
            metrics = {k: v for k, v in results[split].items() if isinstance(v, float)}
            print(split, json.dumps(metrics))


if __name__ == "__main__":
    _options = _define_flags()
    flags.mark_flags_as_required(["config", "checkpoint", "workdir"])
    app.run(lambda argv: main(argv, _options))
