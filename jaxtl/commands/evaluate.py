"""Scores a trained run on another dataset's splits, e.g. a CheXpert model on ChestX-ray14:

    python -m jaxtl.commands.evaluate --config configs/cxr14.py --checkpoint runs/chexpert \\
        --workdir runs/chexpert-on-cxr14 --config.data.task=competition5

The model (architecture, head, dtype, channels, resolution) and its variables, head included,
come from the checkpoint's run; the data, task and label policies come from --config. The
task's labels must be the run's labels in the same order: CXR14 findings can be named in
CheXpert terms through the documented mapping (jaxtl/data/chest/labels.py). Writes
`results.json` with the val and test metrics (bootstrap CIs by patient) to --workdir and prints
them as a table, each value with its interval.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Collection
from typing import Any

import jax
import ml_collections
from absl import flags, logging

from jaxtl import __version__, evaluators
from jaxtl.commands import cli
from jaxtl.config import demo_settings as demo
from jaxtl.config import validation as configuration
from jaxtl.core import provenance
from jaxtl.core.errors import TransferError
from jaxtl.data import loading
from jaxtl.engine import steps, transfer
from jaxtl.engine.build import build
from jaxtl.metrics import headline
from jaxtl.workdir import files as rundir


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Config of the data to score on."),
        "checkpoint": flags.DEFINE_string("checkpoint", None, "A jaxtl run's workdir (its "
                                          "best checkpoint is used) or one checkpoint folder."),
        "workdir": flags.DEFINE_string("workdir", None, "Where results.json is written."),
    }


MODEL_KEYS = ("model.arch", "model.head", "model.dropout", "model.dtype", "data.channels",
              "data.resolution", "data.mean", "data.std")


def source_run(checkpoint: pathlib.Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flattened config, results) of the run that wrote the checkpoint."""
    workdir = rundir.run_folder_of(checkpoint)
    results = rundir.read_results(workdir) if workdir is not None else None
    if results is None:
        raise TransferError(f"{checkpoint} is not inside a finished jaxtl run: expected "
                            f"{rundir.CONFIG_FILE} and {rundir.RESULTS_FILE} in it or a folder "
                            f"above it")
    config_text = (workdir / rundir.CONFIG_FILE).read_text()
    return dict(configuration.flatten(json.loads(config_text))), results


def adopt_model(config: ml_collections.ConfigDict, source: dict[str, Any]) -> None:
    for key in MODEL_KEYS:
        section, name = key.split(".")
        value = source[key]
        config[section][name] = tuple(value) if isinstance(value, list) else value


def evaluate_checkpoint(config: ml_collections.ConfigDict, checkpoint: str | pathlib.Path,
                        workdir: str | pathlib.Path, *,
                        set_by_user: Collection[str] = ()) -> dict[str, Any]:
    checkpoint = pathlib.Path(checkpoint).expanduser().resolve()
    source, source_results = source_run(checkpoint)
    spec = configuration.dataset_spec(config)
    notes = demo.apply(config, set_by_user, spec)
    adopt_model(config, source)
    configuration.validate(config, spec)  # once, on the config the checkpoint is scored with
    for note in notes:
        logging.info("%s", note)
    run, state = build(config, spec)
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
        "demo": loading.is_demo(config, spec),
        "dataset": run.splits.name,
        "checkpoint": str(checkpoint),
        "trained_on": source["dataset"],
        "jaxtl_version": __version__,
        **provenance.git_commit(),
        **provenance.environment(),
        "task": source_results["task"],
        "split_sizes": {name: len(run.splits.split(name)) for name in ("train", "val", "test")},
        **evaluators.for_task(run.splits.task).final_results(run, state, pathlib.Path(workdir)),
        "config": config.to_dict(),
    }
    if jax.process_index() == 0:
        rundir.write_results(pathlib.Path(workdir), results)
    return results


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    results = evaluate_checkpoint(options["config"].value, options["checkpoint"].value,
                                  options["workdir"].value,
                                  set_by_user=cli.config_overrides(options["config"]))
    print(results_table(results))
    print(f"results (JSON): {pathlib.Path(options['workdir'].value) / rundir.RESULTS_FILE}")


def results_table(results: dict[str, Any]) -> str:
    """The val and test metrics, each with its interval, as a table for the console."""
    return headline.text_table(*headline.splits_table(results))


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config as this program takes it (demo settings applied)."""
    return cli.check_config(argv, options, demo_run=True)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "checkpoint", "workdir"), check=check)
