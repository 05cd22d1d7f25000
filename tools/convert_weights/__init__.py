"""Weight converters, the programs: timm / torchvision / BiT / transformers / open_clip /
big_vision checkpoints -> jaxtl pretrained checkpoints.

`python -m jaxtl.convert_weights.timm`    timm or torchvision state dicts (.safetensors, .pth, .bin)
`python -m jaxtl.convert_weights.bit`     original BiT `.npz` files (big_transfer naming)
`python -m jaxtl.convert_weights.hf`      Hugging Face transformers ViTModel / Dinov2Model folders
`python -m jaxtl.convert_weights.open_clip`  open_clip models' timm image tower (`visual.trunk`)
`python -m jaxtl.convert_weights.big_vision` AugReg / big_vision ViT `.npz` files
`python -m jaxtl.convert_weights.verify`  compares converted logits with timm's (parity table)
`python -m jaxtl.convert_weights.verify_libraries`  full-size hf conversions against transformers

Each converter is a thin program (flags, `main`) over the library that converts,
`jaxtl.conversion` (`foreign.py` here: the command line the hf, open_clip and big_vision
converters share). Installed as `jaxtl.convert_weights` (setup.py maps this folder there), so
the programs import each other relatively; nothing in the jaxtl library imports them
(tests/test_layout.py). Only `timm_reference` (a standalone script run by `verify` with an
interpreter that has torch + timm, or imported by `make_golden`) and `make_library_golden`
(torch, transformers, open_clip) import torch; `synthetic` and `synthetic_layouts` regenerate
the golden files' weights with NumPy.
"""
