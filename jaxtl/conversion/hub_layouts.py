"""The Hugging Face hub layouts jaxtl converts, one line each (`LAYOUTS`).

`--config.model.init=hf-hub:ORG/NAME` (jaxtl.engine.hub) takes the first layout whose
`config_file` the repository has and whose `recognises` accepts that file's JSON, fetches the
first of its `weight_files` that the repository has (and those of its `extra_files` it has,
beside them), and converts it with `convert(config, weights, out, source) -> out` into jaxtl's
cache. `command(repo, config, weights)` is
the conversion of a local copy, which the error messages give when the hub cannot be reached.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

from jaxtl.conversion import hf, open_clip, timm


@dataclasses.dataclass(frozen=True)
class HubLayout:
    library: str  # recorded in pretrained.json's source
    config_file: str
    weight_files: tuple[str, ...]  # by preference: the first the repository has is converted
    recognises: Callable[[dict], bool]
    convert: Callable[[dict, pathlib.Path, pathlib.Path, dict], pathlib.Path]
    command: Callable[[str, dict, str], str]
    extra_files: tuple[str, ...] = ()  # read by `convert` from beside the weights when there


def _transformers_config(config: dict) -> bool:
    """A transformers ViTModel or Dinov2Model repository's config.json (RAD-DINO, Phikon)."""
    return config.get("model_type") in hf.CONFIG_DEFAULTS


def _transformers_convert(config: dict, weights: pathlib.Path, out: pathlib.Path,
                          source: dict) -> pathlib.Path:
    del config, source  # hf.convert reads the snapshot folder's config.json itself
    return hf.convert(str(weights.parent), str(out))


def _transformers_command(repo: str, config: dict, weights: str) -> str:
    del config, weights
    folder = f"DOWNLOADED_FOLDER_OF_{repo.replace('/', '_')}"
    return f"python -m jaxtl.convert_weights.hf --weights {folder} --out DIR"


def _open_clip_config(config: dict) -> bool:
    """An open_clip repository's open_clip_config.json whose image tower is a timm model."""
    return bool(config.get("model_cfg", {}).get("vision_cfg", {}).get("timm_model_name"))


def _open_clip_convert(config: dict, weights: pathlib.Path, out: pathlib.Path,
                       source: dict) -> pathlib.Path:
    del config, source  # open_clip.convert reads open_clip_config.json beside the weights
    return open_clip.convert(str(weights), str(out))


def _open_clip_command(repo: str, config: dict, weights: str) -> str:
    del config
    return f"python -m jaxtl.convert_weights.open_clip --weights {weights} --out DIR"


LAYOUTS = (
    HubLayout("timm", "config.json", ("model.safetensors", "pytorch_model.bin"),
              timm.is_hub_config, timm.convert_hub, timm.hub_command),
    HubLayout("transformers", "config.json", ("model.safetensors",), _transformers_config,
              _transformers_convert, _transformers_command,
              extra_files=("preprocessor_config.json",)),
    HubLayout("open_clip", open_clip.CONFIG_FILE,
              ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"), _open_clip_config,
              _open_clip_convert, _open_clip_command),
)
