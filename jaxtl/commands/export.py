"""Exports a run's model as pretrained weights:

    python -m jaxtl.export --workdir runs/lora-vit --out exported/lora-vit

(also `python -m jaxtl.commands.export`). The run's best checkpoint (a LoRA run's adapters
merged into its base, `jaxtl.engine.transfer.load_variables`) is written to --out as
  * a jaxtl pretrained folder (`pretrained.json` + `variables.safetensors`:
    `jaxtl.workdir.pretrained`), which `--config.model.init` and `jaxtl.engine.transfer.load`
    accept, and
  * `model.safetensors`, the same weights in timm's names and layouts (the inverse of
    `python -m jaxtl.convert_weights.timm`: `jaxtl.conversion.timm_export`), for architectures
    with a timm counterpart and the linear head timm has: `timm.create_model(NAME,
    num_classes=N, pretrained_cfg_overlay=dict(file="model.safetensors"), pretrained=True)`.
Runs without adapters export the same way.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from absl import flags

from jaxtl import models
from jaxtl.commands import cli
from jaxtl.conversion.timm_export import timm_state_dict
from jaxtl.core.errors import UserError
from jaxtl.engine import transfer
from jaxtl.workdir import files as rundir
from jaxtl.workdir import pretrained

TIMM_FILE = "model.safetensors"


def define_flags() -> cli.Options:
    return {
        "workdir": flags.DEFINE_string("workdir", None, "A jaxtl run's folder (its best "
                                       "checkpoint is exported)."),
        "out": flags.DEFINE_string("out", None, "Folder to write the exported weights to."),
    }


def run_config(workdir: pathlib.Path) -> dict[str, Any]:
    path = workdir / rundir.CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{workdir} is not a jaxtl run folder (no {rundir.CONFIG_FILE}): pass "
                        f"the --workdir a run was trained in")
    return json.loads(path.read_text())


def export(workdir: str | pathlib.Path, out: str | pathlib.Path) -> list[pathlib.Path]:
    """Writes the run's merged weights to `out`; returns the files written."""
    workdir, out = pathlib.Path(workdir).expanduser().resolve(), pathlib.Path(out).expanduser()
    config = run_config(workdir)
    variables = transfer.load_variables(workdir)
    head = variables["params"].get(transfer.HEAD, {})
    if "fc" not in head:
        raise UserError(f"{workdir} holds no classifier (a segmentation run's UNet?): export "
                        f"writes classification models")
    arch, data = config["model"]["arch"], config["data"]
    info = pretrained.PretrainedInfo(
        arch=arch, num_classes=int(head["fc"]["bias"].shape[0]),
        in_channels=int(data["channels"]), resolution=int(data["resolution"]),
        mean=tuple(data["mean"]), std=tuple(data["std"]), head=config["model"]["head"],
        source={"kind": "jaxtl-run", "run": str(workdir),
                "adapter": config["train"].get("adapter", "none"),
                "exporter": "jaxtl.export"})
    written = [pretrained.save_pretrained(out, info, variables) / pretrained.VARIABLES_FILE]
    if models.timm_checkpoint(arch) is not None and info.head == "linear":
        from safetensors.numpy import save_file

        save_file(timm_state_dict(arch, variables), out / TIMM_FILE,
                  metadata={"format": "pt", "exporter": "jaxtl.export"})
        written.append(out / TIMM_FILE)
    return written


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    written = export(options["workdir"].value, options["out"].value)
    for path in written:
        print(f"wrote {path}")
    if len(written) == 1:
        print("no timm file: the architecture has no timm counterpart or the head is not "
              "timm's linear classifier")


def check(argv: list[str], options: cli.Options) -> str:
    """--check: the run folder is read when the command runs."""
    del argv
    return (f"the command line parses; exports {options['workdir'].value} to "
            f"{options['out'].value} (read when the command runs)")


if __name__ == "__main__":
    cli.run(main, define_flags, required=("workdir", "out"), check=check)
