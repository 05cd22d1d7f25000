"""open_clip model with a timm ViT image tower -> jaxtl pretrained checkpoint (image tower only).

    python -m jaxtl.convert_weights.open_clip --weights open_clip_pytorch_model.bin --out DIR \\
        [--arch vit_base_patch16_224]

For BiomedCLIP and other open_clip models whose `vision_cfg` names a `timm_model_name`;
`open_clip_config.json` beside the weights gives the defaults of --arch, --resolution, --mean
and --std. What is kept and what is left out: `jaxtl.conversion.open_clip`.
"""

from __future__ import annotations

from jaxtl.conversion.open_clip import CONFIG_FILE, convert

from . import foreign

if __name__ == "__main__":
    foreign.run_converter(convert, "open_clip state dict (open_clip_pytorch_model.bin or "
                          ".safetensors)", f"{CONFIG_FILE}'s vision_cfg.timm_model_name names")
