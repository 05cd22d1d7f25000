"""Weight converters: timm / torchvision / BiT checkpoints -> jaxtl pretrained checkpoints.

`python -m tools.convert_weights.timm`    timm or torchvision state dicts (.safetensors, .pth, .bin)
`python -m tools.convert_weights.bit`     original BiT `.npz` files (big_transfer naming)
`python -m tools.convert_weights.verify`  compares converted logits with timm's (parity table)

Only `timm_reference` (used through a subprocess, or by `make_golden`) imports torch.
"""
