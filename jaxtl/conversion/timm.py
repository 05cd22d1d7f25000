"""timm (or torchvision) checkpoint -> jaxtl pretrained checkpoint.

The conversion of `python -m jaxtl.convert_weights.timm` (tools/convert_weights/timm.py,
its command line).

`--weights` is a timm state dict as `.safetensors` (read without torch) or `.pth`/`.bin`
(needs torch; read with `torch.load(weights_only=True)`, so only tensors are ever unpickled).
The state dict may sit under `model` or `state_dict` (RETFound's MAE `.pth` files); a file
without the classifier converts to a backbone-only checkpoint for `--config.model.init`
(`jaxtl.conversion.convert`). A Hugging Face timm download (`model.safetensors` next to
`config.json`) gives its input mean/std and resolution from that `config.json`; otherwise timm
1.0.31's defaults for the architecture apply (its model family's `TimmCheckpoint`,
jaxtl/models/<family>.py), and `--mean/--std/--resolution` set them.

torchvision state dicts use timm's names for ResNet and DenseNet, so they convert as they are
(including torchxrayvision's chest X-ray DenseNet121: see the README). The output folder
receives `pretrained.json` + `variables.safetensors` (`jaxtl.workdir.pretrained`).

A timm repository of the Hugging Face hub (`--config.model.init=hf-hub:ORG/NAME`) is converted by
`convert_hub` (`jaxtl.conversion.hub_layouts` lists the converters of each hub layout): its
`config.json` names timm's architecture (`architecture`, `model_args`), which `hub_arch` maps
to jaxtl's.
"""

from __future__ import annotations

import json
import pathlib
import re

from jaxtl import models
from jaxtl.conversion import foreign
from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.reading import read_weights
from jaxtl.conversion.timm_layout import convertible_architectures

# timm's arguments that let a ViT take any input size: they change no weight, and jaxtl's
# models take any size anyway, so a hub config.json without them still fits.
INPUT_SIZE_ARGS = ("dynamic_img_size", "dynamic_img_pad")
# The classifier's size is no layout: jaxtl's head replaces it (UNI's config.json says 0).
NOT_LAYOUT_ARGS = (*INPUT_SIZE_ARGS, "num_classes")
# Arguments a timm name states (vit_large_patch16_224: patch_size 16, img_size 224): a
# config.json repeating them (UNI's does) asks for nothing else.
NAMED_ARGS = {"patch_size": r"patch(\d+)", "img_size": r"_(\d+)$"}


def hub_config(weights: pathlib.Path) -> dict:
    """`pretrained_cfg` of a Hugging Face timm download (config.json beside the weights)."""
    path = weights.parent / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path} (beside --weights) is not valid JSON ({error}): download "
                              f"it again, or move it away to take the architecture's input "
                              f"defaults (--mean, --std, --resolution set them)") from None
    return config.get("pretrained_cfg", {}) if isinstance(config, dict) else {}


def is_hub_config(config: dict) -> bool:
    """A timm repository's config.json (timm's hub layout): it names timm's architecture."""
    return isinstance(config.get("architecture"), str)


def hub_arch(config: dict) -> str:
    """jaxtl's architecture for a timm config.json: the one whose timm model it is (timm's
    name, and `timm_kwargs` equal to `model_args` but for the input-size ones); a
    ConversionError if jaxtl has none."""
    name, args = config["architecture"], config.get("model_args") or {}

    named = {key: int(found[1]) for key, pattern in NAMED_ARGS.items()
             if (found := re.search(pattern, name))}

    def layout(kwargs: dict) -> dict:
        return {key: value for key, value in kwargs.items()
                if key not in NOT_LAYOUT_ARGS and named.get(key, object()) != value}

    fitting = [arch for arch in convertible_architectures()
               if (checkpoint := models.timm_checkpoint(arch)).model_name(arch) == name
               and layout(dict(checkpoint.timm_kwargs)) == layout(args)]
    if not fitting:
        given = f" with {args}" if args else ""
        raise ConversionError(f"timm's {name}{given} is not an architecture jaxtl has; "
                              f"convertible: {', '.join(sorted(convertible_architectures()))}")
    return fitting[0]


def convert_hub(config: dict, weights: pathlib.Path, out: pathlib.Path,
                source: dict) -> pathlib.Path:
    """A timm hub snapshot (its config.json as `config`, its weights file) -> `out`."""
    return convert(hub_arch(config), str(weights), str(out), source=source)


def hub_command(repo: str, config: dict, weights: str) -> str:
    """The command converting a local copy of timm hub repository `repo` (ORG/NAME); without
    its config.json, the architecture is the name's part before the tag (timm/resnet50.a1_in1k)."""
    guess = {"architecture": repo.split("/")[-1].split(".")[0]}
    try:
        arch = hub_arch(config if is_hub_config(config) else guess)
    except ConversionError:
        arch = "ARCH"
    return f"python -m jaxtl.convert_weights.timm --arch {arch} --weights {weights} --out DIR"


def convert(arch: str, weights: str, out: str, *, mean=None, std=None, resolution=None,
            ignore=(), source: dict | None = None) -> pathlib.Path:
    """Converts `weights` into `out`; `source`: where they came from (beside the file's name
    and hash), e.g. the hub repository and revision."""
    path = pathlib.Path(weights).expanduser()
    state = read_weights(path)
    hub = hub_config(path)
    if hub:
        mean = mean or hub.get("mean")
        std = std or hub.get("std")
        resolution = resolution or (hub.get("input_size") or [None, None])[1]
    return foreign.write_checkpoint(
        arch, state, out, weights=path, kind="timm", converter="jaxtl.convert_weights.timm",
        resolution=resolution, mean=mean, std=std, extra=source, ignore=ignore)
