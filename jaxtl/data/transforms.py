"""Per-image work done in Grain workers: decode -> resize -> augment -> normalise.

Transforms are frozen dataclasses so they pickle into worker processes; every random choice
comes from the `numpy.random.Generator` that Grain derives from the config seed and the
element's position, so a run is reproducible and resumable.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from jaxtl.data.records import DataError, Record


@dataclasses.dataclass(frozen=True)
class ImageTransform:
    resolution: int
    channels: int  # 1 decodes as grayscale, 3 as RGB
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: tuple[str, ...] = ()  # any of 'crop', 'flip', 'rotate'
    crop_scale_min: float = 0.7
    rotate_degrees: float = 10.0

    def load(self, path: str) -> Image.Image:
        mode = "L" if self.channels == 1 else "RGB"
        try:
            image = Image.open(path)
            # JPEG decoders can downscale by 1/2..1/8 while decoding: much faster for large
            # fundus photographs, and the result is still at least `resolution` on a side.
            image.draft(mode, (self.resolution, self.resolution))
            return image.convert(mode)
        except (OSError, SyntaxError, ValueError) as error:
            raise DataError(f"{path} cannot be read as an image ({error}); replace the file "
                            f"or remove its row from the labels file") from error

    def crop_box(self, width: int, height: int,
                 rng: np.random.Generator | None) -> tuple[float, float, float, float]:
        """The centred square by default; with 'crop', a random square of random area."""
        side = float(min(width, height))
        if rng is not None and "crop" in self.augment:
            side *= float(np.sqrt(rng.uniform(self.crop_scale_min, 1.0)))
            left = rng.uniform(0.0, width - side)
            top = rng.uniform(0.0, height - side)
        else:
            left, top = (width - side) / 2.0, (height - side) / 2.0
        return left, top, left + side, top + side

    def pixels(self, path: str, rng: np.random.Generator | None) -> np.ndarray:
        """Uint8 HWC pixels at `resolution`; augmented when `rng` is given."""
        image = self.load(path)
        box = self.crop_box(image.width, image.height, rng)
        image = image.resize((self.resolution, self.resolution), Image.Resampling.BILINEAR,
                             box=box)
        if rng is not None and "flip" in self.augment and rng.uniform() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng is not None and "rotate" in self.augment:
            angle = rng.uniform(-self.rotate_degrees, self.rotate_degrees)
            image = image.rotate(angle, Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        return array[..., None] if array.ndim == 2 else array

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, np.float32) * 255.0
        std = np.asarray(self.std, np.float32) * 255.0
        return (pixels.astype(np.float32) - mean) / std

    def blank(self) -> np.ndarray:
        return np.zeros((self.resolution, self.resolution, self.channels), np.float32)


@dataclasses.dataclass(frozen=True)
class TrainExample:
    """Grain RandomMap: Record -> augmented, normalised example."""

    transform: ImageTransform

    def __call__(self, record: Record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        image = self.transform.normalise(self.transform.pixels(record.path, rng))
        return {"image": image, "label": np.asarray(record.label, np.int32)}


@dataclasses.dataclass(frozen=True)
class EvalExample:
    """Grain Map: (Record or None for padding, index in the split) -> example with a mask."""

    transform: ImageTransform
    label_shape: tuple[int, ...] = ()  # () for a class index, (L,) for L labels

    def __call__(self, item: tuple[Record | None, int]) -> dict[str, np.ndarray]:
        record, index = item
        if record is None:
            return {"image": self.transform.blank(),
                    "label": np.full(self.label_shape, -1 if self.label_shape else 0, np.int32),
                    "index": np.int32(-1), "mask": np.bool_(False)}
        image = self.transform.normalise(self.transform.pixels(record.path, None))
        return {"image": image, "label": np.asarray(record.label, np.int32), "index": np.int32(index),
                "mask": np.bool_(True)}
