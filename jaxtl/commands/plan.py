"""A run on a TPU slice, on paper: python -m jaxtl.commands.plan --config CONFIG --topology v5e:2x4

Builds the run's real train and eval steps (jaxtl.engine.build.build_steps) with abstract
inputs, compiles them for the topology's chips with the run's sharding (libtpu compiles
without the chips: the `tpu` extra) and prints, per chip: parameter, optimizer-state,
activation/temporary and total memory against the chip's HBM; FLOPs per image; the step time
as a roofline lower bound, max(FLOPs / peak, bytes accessed / HBM bandwidth); images/s per
chip and for the slice; projected MFU; all-reduces per step; compile time. `--json` prints
the figures as one JSON object; `--fit` also finds the largest per-chip batch that fits (a
binary search on compiles). Nothing is placed on a device and no image is read (the label
files are, for the task's classes; demo settings apply without data, as in every program).
docs/tpu.md says how to read the figures and what they do not promise.
"""

from __future__ import annotations

import json

from absl import flags

from jaxtl.commands import cli
from jaxtl.core import chips

GB = 1e9


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file."),
        "topology": flags.DEFINE_string("topology", None, "TPU topology as libtpu names it: "
                                        f"<chip>:<grid> with a chip among {', '.join(chips.CHIPS)}"
                                        " (v5e:2x4 is a v5e-8, v4:2x2x1 a v4-8)."),
        "fit": flags.DEFINE_bool("fit", False, "Also find the largest per-chip batch whose "
                                 "steps fit in the chip's memory (several compiles)."),
        "json": flags.DEFINE_bool("json", False, "Print the figures as one JSON object."),
    }


def _prepared(options: cli.Options):
    from jaxtl.config import demo_settings, validation

    config = options["config"].value
    spec = validation.dataset_spec(config)
    notes = demo_settings.apply(config, cli.config_overrides(options["config"]), spec)
    validation.validate(config, spec)
    return config, spec, notes


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the config as the run would take it and the topology's name."""
    topology = chips.parse_topology(options["topology"].value)
    return (f"{cli.check_config(argv, options, demo_run=True)}; topology {topology.name}: "
            f"{topology.chips} {topology.chip.name} chips")


def report(summary: dict, config) -> list[str]:
    chip = chips.CHIPS[summary["chip"]]
    hbm = summary["hbm_bytes"]

    def gb(value: float) -> str:
        return f"{value / GB:8.2f} GB"

    lines = [
        f"{config.dataset}: {config.model.arch} at {config.data.resolution} px, "
        f"{config.model.dtype}, batch {summary['batch_size']} on {summary['topology']} "
        f"({summary['chips']} chips {chip.name}: {hbm / GB:.1f} GB HBM, "
        f"{chip.peak_bf16_flops / 1e12:.0f} TFLOP/s bf16, "
        f"{chip.hbm_bytes_per_second / GB:.0f} GB/s)",
        f"per chip, {summary['images_per_chip']} images a step:",
        f"  parameters and BatchNorm statistics  {gb(summary['parameter_bytes'])}",
        f"  optimizer state                      {gb(summary['optimizer_state_bytes'])}",
        f"  activations, batch and temporaries   "
        f"{gb(summary['activation_and_temporary_bytes'])}",
        f"  train step total                     {gb(summary['train_memory_bytes'])}  "
        f"{summary['train_memory_bytes'] / hbm:.0%} of HBM",
        f"  eval step total                      {gb(summary['eval_memory_bytes'])}  "
        f"{summary['eval_memory_bytes'] / hbm:.0%} of HBM"
        + ("" if summary["fits"] else "  DOES NOT FIT"),
        f"  FLOPs per training image             "
        f"{summary['train_flops_per_image'] / 1e9:8.2f} GFLOP",
        f"  bytes accessed per train step        "
        f"{gb(summary['train_bytes_accessed_per_step'])}",
        f"  train step, roofline lower bound     {summary['train_step_seconds'] * 1e3:8.2f} ms "
        f"({summary['bound']}-bound)",
        f"  images/s per chip (at most)          {summary['images_per_second_per_chip']:8.0f}",
        f"  images/s for the slice (at most)     {summary['images_per_second']:8.0f}",
        f"  projected MFU (at most)              {summary['mfu']:8.1%}",
        f"  all-reduces per train step           {summary['train_all_reduces']:8d}",
        f"  compile time (train + eval)          {summary['compile_seconds']:8.1f} s",
    ]
    if "fit_images_per_chip" in summary:
        lines.append(f"  largest per-chip batch that fits     {summary['fit_images_per_chip']:8d}")
    lines.append("Projections of the XLA:TPU compiler, not measurements: docs/tpu.md.")
    return lines


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    from jaxtl.engine import projection

    topology = chips.parse_topology(options["topology"].value)
    config, spec, notes = _prepared(options)
    task = projection.task_of(config, spec)
    summary = projection.project(config, topology, spec=spec, task=task).summary()
    if options["fit"].value:
        per_chip, _ = projection.largest_fitting_batch(config, topology, spec=spec, task=task)
        summary["fit_images_per_chip"] = per_chip
    if options["json"].value:
        print(json.dumps({"config": config.dataset, "arch": config.model.arch,
                          "resolution": config.data.resolution, "dtype": config.model.dtype,
                          "demo": bool(notes), **summary}, indent=2))
        return
    print("\n".join([*notes, *report(summary, config)]))


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config", "topology"), check=check)
