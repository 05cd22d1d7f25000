"""Which jaxtl ViT architecture a foreign checkpoint is: its layout (read from the library's
config or the weights' shapes) against every registered ViT's `ViTConfig`.

The Hugging Face, open_clip and big_vision converters describe the checkpoint as a `ViTConfig`
and call `pick_architecture`: with `--arch` the two must agree (else one line naming every
field that differs); without it the one architecture with that layout is taken. LayerScale
counts as present or absent (its starting value is the checkpoint's business).
"""

from __future__ import annotations

import dataclasses

from jaxtl import models
from jaxtl.conversion.errors import ConversionError
from jaxtl.models.vit import VisionTransformer, ViTConfig


def _comparable(config: ViTConfig) -> ViTConfig:
    return dataclasses.replace(config, init_values=1.0 if config.init_values else None)


def vit_architectures() -> dict[str, ViTConfig]:
    """Every registered ViT architecture with its layout."""
    found = {}
    for arch in models.list_models():
        backbone = models.create_backbone(arch)
        if isinstance(backbone, VisionTransformer):
            found[arch] = backbone.config
    return found


def differences(found: ViTConfig, wanted: ViTConfig) -> list[str]:
    """'field checkpoint-value (architecture: value)' for every field that differs."""
    a, b = _comparable(found), _comparable(wanted)
    return [f"{field.name} {getattr(a, field.name)!r} (architecture: {getattr(b, field.name)!r})"
            for field in dataclasses.fields(ViTConfig)
            if getattr(a, field.name) != getattr(b, field.name)]


def pick_architecture(found: ViTConfig, arch: str | None, source: str) -> str:
    """`arch` if its layout is `found`'s, else the one architecture with that layout."""
    known = vit_architectures()
    if arch is not None:
        if arch not in known:
            raise ConversionError(f"--arch {arch!r} is no jaxtl ViT; ViTs: "
                                  f"{', '.join(sorted(known))}")
        differ = differences(found, known[arch])
        if differ:
            raise ConversionError(f"{source} does not fit --arch {arch}: " + ", ".join(differ))
        return arch
    matches = [name for name, config in known.items() if not differences(found, config)]
    if len(matches) != 1:
        layout = ", ".join(f"{field.name} {getattr(found, field.name)!r}"
                           for field in dataclasses.fields(found))
        which = f": {', '.join(matches)}" if matches else ""
        raise ConversionError(f"{source}: {'no' if not matches else 'more than one'} jaxtl ViT "
                              f"has its layout ({layout}){which}; pass --arch to see what "
                              f"differs")
    return matches[0]
