"""The Hugging Face hub layouts jaxtl converts, one line each (`LAYOUTS`).

`--config.model.init=hf-hub:ORG/NAME` (jaxtl.engine.hub) takes the first layout whose
`config_file` the repository has and whose `recognises` accepts that file's JSON, fetches the
first of its `weight_files` that the repository has, and converts it with `convert(config,
weights, out, source) -> out` into jaxtl's cache. `command(repo, config, weights)` is
the conversion of a local copy, which the error messages give when the hub cannot be reached.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

from . import timm


@dataclasses.dataclass(frozen=True)
class HubLayout:
    library: str  # recorded in pretrained.json's source
    config_file: str
    weight_files: tuple[str, ...]  # by preference: the first the repository has is converted
    recognises: Callable[[dict], bool]
    convert: Callable[[dict, pathlib.Path, pathlib.Path, dict], pathlib.Path]
    command: Callable[[str, dict, str], str]


LAYOUTS = (
    HubLayout("timm", "config.json", ("model.safetensors", "pytorch_model.bin"),
              timm.is_hub_config, timm.convert_hub, timm.hub_command),
)
