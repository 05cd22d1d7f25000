"""open_clip model with a timm ViT image tower -> jaxtl pretrained checkpoint (image tower only).

The conversion of `python -m jaxtl.convert_weights.open_clip` 
(tools/convert_weights/open_clip.py, its command line).

For BiomedCLIP (`hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`) and other
open_clip models whose `vision_cfg` names a `timm_model_name`: the image tower is
`visual.trunk.*`, a timm model under timm's own names, which converts as a timm checkpoint
(the `timm` converter's rules). Everything else is left out, and the result is a backbone-only
checkpoint (`num_classes` 0) for `--config.model.init`:
  * the text tower and `logit_scale`;
  * `visual.head.proj`, the linear map from the trunk's pooled features into the shared
    image-text embedding. It is no classifier (its outputs mean something only next to the
    text tower's), and a fine-tuning head is put on the trunk's features as on any backbone,
    so its pooled features are open_clip's `model.visual.trunk(images)`.
`open_clip_config.json` beside the weights (the hf-hub download) gives the default `--arch`
(`vision_cfg.timm_model_name`), the resolution (`vision_cfg.image_size`) and the input mean/std
(`preprocess_cfg`, else open_clip's OpenAI CLIP defaults). Only class-token pooling
(`timm_pool` "" or "token") is read: an average-pooled timm trunk keeps timm's final norm
before the mean, which no jaxtl ViT does. OpenAI-style towers (`visual.conv1`,
`visual.transformer`) are refused.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import numpy as np

from jaxtl.conversion import foreign
from jaxtl.conversion.errors import ConversionError
from jaxtl.conversion.reading import read_weights
from jaxtl.conversion.vit_match import vit_architectures

TRUNK = "visual.trunk."
CONFIG_FILE = "open_clip_config.json"
# open_clip's OPENAI_DATASET_MEAN / OPENAI_DATASET_STD, its default preprocessing
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TOKEN_POOLS = ("", "token")


def trunk_state(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The image tower's trunk under timm's names."""
    trunk = {k[len(TRUNK):]: v for k, v in state.items() if k.startswith(TRUNK)}
    if not trunk:
        kind = ("an OpenAI-style image tower (visual.conv1, visual.transformer), not a timm one"
                if "visual.conv1.weight" in state else "no visual.trunk.* entries")
        raise ConversionError(f"the weights have {kind}: this converter reads open_clip models "
                              f"whose image tower is a timm ViT")
    return trunk


def read_config(weights: pathlib.Path) -> dict:
    path = weights.parent / CONFIG_FILE
    return foreign.read_json(path) if path.is_file() else {}


def convert(weights: str, out: str, *, arch: str | None = None, mean=None, std=None,
            resolution: int | None = None) -> pathlib.Path:
    path = pathlib.Path(weights).expanduser()
    config = read_config(path)
    vision = config.get("model_cfg", {}).get("vision_cfg", {})
    pool = vision.get("timm_pool", "")
    if pool not in TOKEN_POOLS:
        raise ConversionError(f"{CONFIG_FILE} has timm_pool {pool!r}; jaxtl reads open_clip "
                              f"trunks pooled by their class token (timm_pool '' or 'token')")
    arch = arch or vision.get("timm_model_name")
    if not arch:
        raise ConversionError(f"no {CONFIG_FILE} with vision_cfg.timm_model_name beside "
                              f"{path.name}: give --arch")
    if arch not in vit_architectures():
        raise ConversionError(f"--arch {arch!r} is no jaxtl ViT; ViTs: "
                              f"{', '.join(sorted(vit_architectures()))}")
    preprocess = config.get("preprocess_cfg", {})
    size = vision.get("image_size")
    return foreign.write_checkpoint(
        arch, trunk_state(read_weights(path)), out, weights=path, kind="open_clip",
        converter="jaxtl.convert_weights.open_clip",
        resolution=resolution or (size if isinstance(size, int) else None) or
        vit_architectures()[arch].img_size,
        mean=mean or preprocess.get("mean", OPENAI_MEAN),
        std=std or preprocess.get("std", OPENAI_STD),
        extra={"library": "open_clip", "name": path.parent.name,
               "dropped": "text tower, logit_scale, visual.head (image-text projection)"})
