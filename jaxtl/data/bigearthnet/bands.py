"""Sentinel-2 bands of a BigEarthNet-S2 patch: band sets, published statistics, the decoder.

Bands lie on three grids: 10 m (120x120 px: B02 B03 B04 B08), 20 m (60x60: B05 B06 B07 B8A B11
B12) and 60 m (20x20: B01 B09), one GeoTIFF each. The decoder reads the selected bands with
tifffile (no GDAL) and upsamples the coarser ones to 120x120 with the configured interpolation
(Pillow on float32 pixels, pixel areas aligned), giving float32 values as stored (digital
numbers; 10000 = reflectance 1.0).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import tifffile
from PIL import Image

from jaxtl.data.records import DataError

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
GRID_METRES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20,
               "B8A": 20, "B11": 20, "B12": 20, "B01": 60, "B09": 60}
PATCH_SIDE = 120  # pixels of a 10 m band; a band on a G-metre grid has 120 * 10 / G
BAND_SETS = {
    "10m20m": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    "all": BANDS,
    "10m": ("B02", "B03", "B04", "B08"),
    "rgb": ("B04", "B03", "B02"),
}
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC}
REFLECTANCE_SCALE = 10000.0  # L2A digital number of reflectance 1.0
# Per-band mean and standard deviation of the digital numbers over BigEarthNet-S2, as published
# with the BigEarthNet TensorFlow models (rsim, TU Berlin: bigearthnet-models-tf, BigEarthNet.py).
PUBLISHED_MEAN = {
    "B01": 340.76769064, "B02": 429.9430203, "B03": 614.21682446, "B04": 590.23569706,
    "B05": 950.68368468, "B06": 1792.46290469, "B07": 2075.46795189, "B08": 2218.94553375,
    "B8A": 2266.46036911, "B09": 2246.0605464, "B11": 1594.42694882, "B12": 1009.32729131,
}
PUBLISHED_STD = {
    "B01": 554.81258967, "B02": 572.41639287, "B03": 582.87945694, "B04": 675.88746967,
    "B05": 729.89827633, "B06": 1096.01480586, "B07": 1273.45393088, "B08": 1365.45589904,
    "B8A": 1356.13789355, "B09": 1302.3292881, "B11": 1079.19066363, "B12": 818.86747235,
}


def parse_bands(value: str) -> tuple[str, ...]:
    """A named set ('10m20m', 'all', '10m', 'rgb') or a comma list such as 'B04,B03,B02'."""
    if value in BAND_SETS:
        return BAND_SETS[value]
    bands = tuple(part.strip().upper() for part in value.split(",") if part.strip())
    unknown = [b for b in bands if b not in BANDS]
    if not bands or unknown or len(set(bands)) != len(bands):
        raise ValueError(f"{value!r} is not a band selection: use one of "
                         f"{', '.join(BAND_SETS)} or a comma list of distinct bands from "
                         f"{', '.join(BANDS)}")
    return bands


def published_statistics(bands: Sequence[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band (mean, std) on the 0..1 reflectance scale (digital number / 10000)."""
    return (tuple(round(PUBLISHED_MEAN[b] / REFLECTANCE_SCALE, 6) for b in bands),
            tuple(round(PUBLISHED_STD[b] / REFLECTANCE_SCALE, 6) for b in bands))


def band_path(folder: pathlib.Path, band: str) -> pathlib.Path:
    return folder / f"{folder.name}_{band}.tif"


def band_side(band: str) -> int:
    return PATCH_SIDE * 10 // GRID_METRES[band]


@dataclasses.dataclass(frozen=True)
class BandStackDecoder:
    """A patch folder -> (120, 120, len(bands)) float32 digital numbers, bands in order."""

    bands: tuple[str, ...]
    interpolation: str = "bilinear"
    value_scale: float = REFLECTANCE_SCALE
    # Sentinel-2 digital numbers are 16-bit: upsampled bands round to them on the way to the
    # device (half a digital number, under 0.001 of a band's standard deviation)
    wire_dtype: ClassVar[str] = "uint16"

    def __post_init__(self) -> None:
        parse_bands(",".join(self.bands))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; choose one of "
                             f"{', '.join(INTERPOLATIONS)}")

    @property
    def channels(self) -> int:
        return len(self.bands)

    def decode(self, path: str, resolution: int) -> np.ndarray:
        del resolution
        folder = pathlib.Path(path)
        out = np.empty((PATCH_SIDE, PATCH_SIDE, len(self.bands)), np.float32)
        for channel, band in enumerate(self.bands):
            out[..., channel] = upsample(read_band(band_path(folder, band), band_side(band)),
                                         PATCH_SIDE, self.interpolation)
        return out


def read_band(path: pathlib.Path, side: int) -> np.ndarray:
    try:
        band = tifffile.imread(path)
    except Exception as error:  # noqa: BLE001 - tifffile raises many kinds on a damaged file
        raise DataError(f"{path} cannot be read as a GeoTIFF ({error}); the patch folder must "
                        f"hold one .tif per band") from error
    if band.size == 0:
        raise DataError(f"{path} cannot be read as a GeoTIFF (it holds no image); replace it "
                        f"from the archive")
    if band.shape != (side, side):
        raise DataError(f"{path} is {band.shape}; a BigEarthNet-S2 band on this grid is "
                        f"({side}, {side})")
    return band


def upsample(band: np.ndarray, side: int, interpolation: str) -> np.ndarray:
    """A square band resampled to side x side with Pillow on float32 pixels.

    Pixel areas stay aligned (a 20 m pixel covers exactly 2x2 output pixels) and the border is
    extended by its edge pixels: bilinear equals `scipy.ndimage.zoom(order=1, grid_mode=True,
    mode='nearest')`; bicubic is Keys' cubic convolution (a = -0.5).
    """
    band = band.astype(np.float32)
    if band.shape[0] == side:
        return band
    return np.asarray(Image.fromarray(band).resize((side, side), INTERPOLATIONS[interpolation]))
