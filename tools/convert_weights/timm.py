"""timm (or torchvision) checkpoint -> jaxtl pretrained checkpoint.

    python -m jaxtl.convert_weights.timm --arch resnet50 --weights model.safetensors --out DIR

`--weights` is a timm state dict as `.safetensors` (read without torch) or `.pth`/`.bin`
(needs torch; read with `torch.load(weights_only=True)`, so only tensors are ever unpickled).
The state dict may sit under `model` or `state_dict` (RETFound's MAE `.pth` files); a file
without the classifier converts to a backbone-only checkpoint for `--config.model.init`
(jaxtl.convert_weights.convert). A Hugging Face timm download (`model.safetensors` next to `config.json`) gives its input
mean/std and resolution from that `config.json`; otherwise timm 1.0.31's defaults for the
architecture apply (its model family's `TimmCheckpoint`, jaxtl/models/<family>.py), and `--mean/--std/--resolution` set them.

torchvision state dicts use timm's names for ResNet and DenseNet, so they convert as they are
(including torchxrayvision's chest X-ray DenseNet121: see the README). DIR receives
`pretrained.json` + `variables.safetensors`; use it with `--config.model.init=DIR` or
`jaxtl.engine.transfer.load(DIR)`.
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from jaxtl.commands import cli
from jaxtl.engine.transfer import save_pretrained

from .convert import convert_timm_state, file_sha256
from .reading import read_weights
from .timm_layout import convertible_architectures


def hub_config(weights: pathlib.Path) -> dict:
    """`pretrained_cfg` of a Hugging Face timm download (config.json beside the weights)."""
    path = weights.parent / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return config.get("pretrained_cfg", {}) if isinstance(config, dict) else {}


def convert(arch: str, weights: str, out: str, *, mean=None, std=None, resolution=None,
            ignore=()) -> pathlib.Path:
    path = pathlib.Path(weights).expanduser()
    state = read_weights(path)
    hub = hub_config(path)
    if hub:
        mean = mean or hub.get("mean")
        std = std or hub.get("std")
        resolution = resolution or (hub.get("input_size") or [None, None])[1]
    info, variables = convert_timm_state(
        arch, state, mean=[float(v) for v in mean] if mean else None,
        std=[float(v) for v in std] if std else None, resolution=resolution,
        ignore=tuple(ignore),
        source={"kind": "timm", "file": path.name, "sha256": file_sha256(path),
                "converter": "jaxtl.convert_weights.timm"})
    target = save_pretrained(out, info, variables)
    classes = f"{info.num_classes} classes" if info.num_classes else "no classifier (backbone only)"
    print(f"{arch}: {classes}, {info.in_channels} input channel(s), "
          f"{info.resolution} px, mean {info.mean}, std {info.std} -> {target}")
    return target


def define_flags() -> cli.Options:
    return {
        "arch": flags.DEFINE_enum("arch", None, sorted(convertible_architectures()),
                                  "jaxtl architecture (python -m jaxtl.models --list)"),
        "weights": flags.DEFINE_string("weights", None, "timm/torchvision state dict: "
                                       ".safetensors, .pth or .bin"),
        "out": flags.DEFINE_string("out", None, "folder to write the jaxtl pretrained "
                                   "checkpoint to"),
        "mean": flags.DEFINE_list("mean", None, "per-channel input mean on the 0..1 scale "
                                  "(default: the weights')"),
        "std": flags.DEFINE_list("std", None, "per-channel input std on the 0..1 scale "
                                 "(default: the weights')"),
        "resolution": flags.DEFINE_integer("resolution", None, "input resolution the weights "
                                           "were trained at"),
        "ignore": flags.DEFINE_list("ignore", [], "state-dict entries that are not weights, "
                                    "e.g. op_threshs"),
    }


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    convert(options["arch"].value, options["weights"].value, options["out"].value,
            mean=options["mean"].value, std=options["std"].value,
            resolution=options["resolution"].value, ignore=options["ignore"].value)


if __name__ == "__main__":
    cli.run(main, define_flags, required=("arch", "weights", "out"))
