"""Small BigEarthNet-S2 downloads written by hand: one folder of GeoTIFF bands per patch."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import tifffile

from jaxtl.data.bigearthnet.bands import BANDS, band_side


def write_patch(root: pathlib.Path, name: str, labels: list[str], seed: int = 0,
                sides: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """One patch folder: 12 uint16 GeoTIFFs at 120/60/20 px and the labels JSON."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    bands = {}
    for band in BANDS:
        side = (sides or {}).get(band, band_side(band))
        bands[band] = rng.integers(0, 10000, (side, side), dtype=np.uint16)
        tifffile.imwrite(folder / f"{name}_{band}.tif", bands[band])
    (folder / f"{name}_labels_metadata.json").write_text(json.dumps(
        {"labels": labels, "coordinates": {"ulx": 0, "uly": 1200, "lrx": 1200, "lry": 0},
         "projection": "", "tile_source": "", "acquisition_date": "2017-06-17 11:33:21"}))
    return bands
