"""big_vision / AugReg ViT `.npz` -> jaxtl pretrained checkpoint.

    python -m jaxtl.convert_weights.big_vision --weights FILE.npz --out DIR [--arch ARCH]

The layout comes from the arrays' shapes and picks the jaxtl architecture; the names read,
what is refused and the input recorded: `jaxtl.conversion.big_vision`.
"""

from __future__ import annotations

from jaxtl.conversion.big_vision import convert

from . import foreign

if __name__ == "__main__":
    foreign.run_converter(convert, "big_vision / AugReg ViT .npz",
                          "the arrays' shapes describe")
