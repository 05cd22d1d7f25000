"""How a dataset's `Record.path` becomes pixels: the decoders shared by several datasets.

A decoder reads one image and returns either a `PIL.Image` (8-bit image files, which then take
the Pillow path of `jaxtl.data.transforms`) or an (H, W, C) NumPy array of any channel count
(the NumPy/SciPy path). Decoders are frozen dataclasses so they pickle into Grain workers.
A dataset with its own storage (BigEarthNet's band folders, TFDS records) defines its decoder in
its package.

Bit depth: Pillow's conversion of a 16-bit grey image to 8 bits clips every value above 255, so
the 8-bit decoder refuses such files instead of returning a white image; `DeepImageDecoder`
keeps 16-bit grey values (radiographs) on the 0..65535 scale.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import BinaryIO, ClassVar, Protocol

import numpy as np
from PIL import Image

from jaxtl.data.records import DataError

Decoded = Image.Image | np.ndarray


class Decoder(Protocol):
    """Reads one image given its `Record.path`."""

    channels: int
    value_scale: float  # the decoded value that means 1.0 on the 0..1 scale of data.mean/std
    # Optional: the dtype pixels cross to the device in ('uint16' for 16-bit data); without it,
    # uint8 for value_scale 255, else float32 (jaxtl.data.transforms.wire_dtype).
    # Optional: `gives_pillow_images` True when `decode` returns PIL images (their training
    # augmentation then runs on the device: jaxtl.data.transforms).

    def decode(self, path: str, resolution: int) -> Decoded:
        """A PIL image (8-bit, 1 or 3 channels) or an (H, W, channels) array. `resolution` is
        the side the image will be resized to (decoders may use it to decode less)."""
        ...


class PilPreprocess(Protocol):
    """An optional step on a decoded image file before cropping (e.g. EyePACS's Graham)."""

    def __call__(self, image: Image.Image, resolution: int) -> Image.Image: ...


@dataclasses.dataclass(frozen=True)
class ImageFileDecoder:
    """JPEG/PNG files through Pillow: 1 channel decodes as grayscale ('L'), 3 as RGB."""

    channels: int = 3
    preprocess: PilPreprocess | None = None
    value_scale: float = 255.0
    gives_pillow_images: ClassVar[bool] = True

    def __post_init__(self) -> None:
        one_or_three(self.channels, "image files")

    def decode(self, path: str, resolution: int) -> Image.Image:
        image = read_8bit_image(path, path, self.channels, resolution)
        return self.preprocess(image, resolution) if self.preprocess is not None else image


def one_or_three(channels: int, what: str) -> None:
    if channels not in (1, 3):
        raise ValueError(f"{what} decode to 1 or 3 channels, not {channels}")


def unreadable(where: str, error: Exception) -> DataError:
    return DataError(f"{where} cannot be read as an image ({error}); replace the file or remove "
                     f"its row from the labels")


# Pillow modes of more than 8 bits per grey pixel: 16-bit integers, 32-bit integers and floats.
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def open_image(source: str | BinaryIO, where: str) -> Image.Image:
    """Pillow's lazy image of a file (a path or a file object); `where` names it in errors."""
    try:
        return Image.open(source)
    except Exception as error:  # noqa: BLE001 - Pillow raises many kinds on damaged files
        raise unreadable(where, error) from error


def read_8bit_image(source: str | BinaryIO, where: str, channels: int,
                    resolution: int) -> Image.Image:
    """An 8-bit image as a Pillow image of 1 ('L') or 3 ('RGB') channels."""
    image = open_image(source, where)
    if image.mode in WIDE_MODES:
        raise DataError(f"{where} is a {image.mode} image (more than 8 bits per pixel), which "
                        f"8-bit decoding would clip; the csv and folders datasets keep 16 bits "
                        f"with bit_depth=16, otherwise convert the file to 8 bits")
    mode = "L" if channels == 1 else "RGB"
    try:
        # JPEG decoders can downscale by 1/2..1/8 while decoding: much faster for large
        # fundus photographs, and the result is still at least `resolution` on a side.
        image.draft(mode, (resolution, resolution))
        return image.convert(mode)
    except Exception as error:  # noqa: BLE001 - Pillow raises many kinds on damaged files
        raise unreadable(where, error) from error


@dataclasses.dataclass(frozen=True)
class DeepImageDecoder:
    """Image files with 16-bit grey values kept: (H, W, channels) uint16 on the 0..65535 scale.

    16-bit grey files (PNG, TIFF) keep their values; 8-bit files are multiplied by 257 (255 ->
    65535), so both depths share one scale and one data.mean/std. channels=3 repeats grey;
    RGB files with channels=1 become grey with Pillow's luma weights first.
    """

    channels: int = 1
    value_scale: float = 65535.0
    wire_dtype: ClassVar[str] = "uint16"  # 16-bit values cross to the device as they are

    def __post_init__(self) -> None:
        one_or_three(self.channels, "image files")

    def decode(self, path: str, resolution: int) -> np.ndarray:
        del resolution
        image = open_image(path, path)
        try:
            if image.mode in SIXTEEN_BIT_MODES:
                pixels = np.asarray(image).astype(np.uint16)
            elif image.mode in WIDE_MODES:
                # Some Pillow versions open 16-bit PNGs as 32-bit integers ('I')
                values = np.asarray(image)
                if image.mode == "F" or values.min() < 0 or values.max() > 65535:
                    raise DataError(f"{path} is a {image.mode} image with values outside "
                                    f"0..65535; jaxtl reads 8- and 16-bit images: convert it "
                                    f"to 16-bit grey")
                pixels = values.astype(np.uint16)
            else:
                pixels = np.asarray(image.convert("L" if self.channels == 1 else "RGB"),
                                    np.uint16) * np.uint16(257)
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001 - Pillow raises many kinds on damaged files
            raise unreadable(path, error) from error
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.shape[-1] != self.channels:
            pixels = np.repeat(pixels, self.channels, axis=-1)
        return pixels


@functools.lru_cache(maxsize=8)
def _memory_mapped(path: str) -> np.ndarray:
    """One read-only memory map per array file and process (workers share the page cache)."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read as a NumPy array ({error}); delete it so that "
                        f"it is rebuilt") from error


@dataclasses.dataclass(frozen=True)
class PatchArrayDecoder:
    """Rows of an (N, H, W, 3) uint8 .npy file; `Record.path` is '<file>.npy#<row>'.

    channels=1 converts RGB to grey with Pillow's 'L' weights (ITU-R 601-2 luma).
    """

    channels: int = 3
    value_scale: float = 255.0

    def __post_init__(self) -> None:
        one_or_three(self.channels, "RGB patches")

    def decode(self, path: str, resolution: int) -> np.ndarray:
        del resolution
        file, _, row = path.rpartition("#")
        if not file or not row.isdigit():
            raise DataError(f"{path!r} does not name a patch as '<file>.npy#<row>'")
        patches = _memory_mapped(file)
        if int(row) >= len(patches):
            raise DataError(f"{path!r}: {file} holds only {len(patches)} patches; delete it "
                            f"so that the patch cache is rebuilt")
        patch = np.asarray(patches[int(row)])
        if self.channels == 1:
            return to_grey(patch)
        return patch


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 1) uint8 with Pillow's convert('L') formula."""
    weights = np.array([299, 587, 114], np.uint32)
    grey = (rgb.astype(np.uint32) @ weights + 500) // 1000
    return grey.astype(np.uint8)[..., None]
