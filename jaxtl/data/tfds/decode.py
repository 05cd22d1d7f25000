"""Decoders of TFDS examples (`Record.path` = '<version dir>#<split>#<index>', see source.py)."""

from __future__ import annotations

import dataclasses
import io
from typing import ClassVar

import numpy as np
from PIL import Image

from jaxtl.data.bigearthnet.bands import PATCH_SIDE, BandStackDecoder, upsample
from jaxtl.data.decoders import read_8bit_image
from jaxtl.data.records import DataError
from jaxtl.data.tfds import source


@dataclasses.dataclass(frozen=True)
class TfdsImageDecoder:
    """An Image feature (PNG or JPEG bytes) decoded by Pillow, as image files are: 8-bit,
    1 (grey) or 3 (RGB) channels, JPEG draft decoding."""

    channels: int = 3
    feature: str = "image"
    value_scale: float = 255.0
    gives_pillow_images: ClassVar[bool] = True

    def decode(self, path: str, resolution: int) -> Image.Image:
        encoded = source.example(path).get(self.feature)
        if not isinstance(encoded, bytes):
            raise DataError(f"{path}: the example has no encoded image feature "
                            f"{self.feature!r}")
        return read_8bit_image(io.BytesIO(encoded), path, self.channels, resolution)


@dataclasses.dataclass(frozen=True)
class TfdsBandsDecoder(BandStackDecoder):
    """BigEarthNet's `all` config: the selected band features (float32 digital numbers at
    their own grids) upsampled to 120x120 and stacked, as the band-folder decoder does."""

    def decode(self, path: str, resolution: int) -> np.ndarray:
        del resolution
        example = source.example(path)
        out = np.empty((PATCH_SIDE, PATCH_SIDE, len(self.bands)), np.float32)
        for channel, band in enumerate(self.bands):
            if band not in example:
                raise DataError(f"{path}: the example has no band {band}")
            out[..., channel] = upsample(np.asarray(example[band], np.float32), PATCH_SIDE,
                                         self.interpolation)
        return out
