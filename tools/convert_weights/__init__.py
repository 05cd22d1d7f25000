"""Weight converters: timm / torchvision / BiT checkpoints -> jaxtl pretrained checkpoints.

`python -m jaxtl.convert_weights.timm`    timm or torchvision state dicts (.safetensors, .pth, .bin)
`python -m jaxtl.convert_weights.bit`     original BiT `.npz` files (big_transfer naming)
`python -m jaxtl.convert_weights.verify`  compares converted logits with timm's (parity table)

What the converters know of each architecture (timm names, classifier, default input size and
statistics) is its model family's `TimmCheckpoint` (jaxtl/models/<family>.py). Installed as
`jaxtl.convert_weights` (pyproject.toml maps this folder there), so the modules import each
other relatively. Only `timm_reference` (a standalone script run by `verify` with an interpreter
that has torch + timm, or imported by `make_golden`) imports torch.
"""
