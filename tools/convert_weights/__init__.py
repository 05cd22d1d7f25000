"""Weight converters: timm / torchvision / BiT / transformers / open_clip / big_vision
checkpoints -> jaxtl pretrained checkpoints.

`python -m jaxtl.convert_weights.timm`    timm or torchvision state dicts (.safetensors, .pth, .bin)
`python -m jaxtl.convert_weights.bit`     original BiT `.npz` files (big_transfer naming)
`python -m jaxtl.convert_weights.hf`      Hugging Face transformers ViTModel / Dinov2Model folders
`python -m jaxtl.convert_weights.open_clip`  open_clip models' timm image tower (`visual.trunk`)
`python -m jaxtl.convert_weights.big_vision` AugReg / big_vision ViT `.npz` files
`python -m jaxtl.convert_weights.verify`  compares converted logits with timm's (parity table)
`python -m jaxtl.convert_weights.verify_libraries`  full-size hf conversions against transformers

What the converters know of each architecture (timm names, classifier, default input size and
statistics) is its model family's `TimmCheckpoint` (jaxtl/models/<family>.py). Installed as
`jaxtl.convert_weights` (pyproject.toml maps this folder there), so the modules import each
other relatively. The three converters above rename their checkpoints into timm's names and
convert them as timm checkpoints (`foreign`, `vit_match`). Only `timm_reference` (a standalone
script run by `verify` with an interpreter that has torch + timm, or imported by `make_golden`)
and `make_library_golden` (torch, transformers, open_clip) import torch.
"""
