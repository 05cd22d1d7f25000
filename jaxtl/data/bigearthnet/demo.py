"""Synthetic demo data in the on-disk layout of BigEarthNet-S2 v1.0.

`write_demo_dataset(root, ...)` writes what the archive and the official split lists hold:

    root/S2B_MSIL2A_20180204T094161_12_34/                  one folder per patch
        S2B_MSIL2A_20180204T094161_12_34_B01.tif ... _B12.tif, _B8A.tif
                                     uint16 GeoTIFFs (UTM, 10/20/60 m: 120/60/20 px a side)
        S2B_MSIL2A_20180204T094161_12_34_labels_metadata.json
                                     labels (43-class CORINE names), coordinates, projection,
                                     tile_source, acquisition_date
    root/train.csv, val.csv, test.csv                       60/20/20 %, one name per line
    root/DEMO_README.txt                                    says the data are synthetic

Patches come from a few scenes (acquisitions). Each patch is a mosaic of one to four land-cover
regions with organic borders; each region has a CORINE class drawn from a prior that follows
the frequencies of the real archive (forests, arable land, pastures and transitional woodland
common; beaches, wetlands and rice fields rare) and its labels are the classes of its regions.
A class is visible in the bands as a reflectance spectrum (e.g. vegetation: low red, a red-edge
rise and a high near-infrared plateau; water: dark, darkest in the infrared; urban and bare
ground: bright and flat with high SWIR) plus a texture (field parcels, buildings, tree crowns),
so labels are learnable from the 10 m and 20 m bands. Scenes differ in haze and illumination.
The 20 m and 60 m bands are area averages of a 10 m rendering, as the sensor's coarser bands
are. As in the real archive, a few patches (clouds, snow) are written but left out of the lists.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re

import numpy as np
import tifffile
from scipy import ndimage

from jaxtl.core.atomic import staged_folder
from jaxtl.data.bigearthnet.bands import BANDS, GRID_METRES, PATCH_SIDE, band_path
from jaxtl.data.bigearthnet.labels import LABELS_43, TO_19
from jaxtl.data.bigearthnet.reader import SPLIT_FILES, labels_path
from jaxtl.data.demo_store import README_FILE

UNLISTED_SHARE = 0.03  # cloudy or snowy patches: written, not listed (as in the archive)
SPLIT_SHARES = (("train", 0.6), ("val", 0.2), ("test", 0.2))
PATCH_METRES = PATCH_SIDE * 10

# Surface reflectance x 10000 per band (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12) of the
# kinds of land cover; every CORINE class below is one of these with its own small variation.
_SPECTRA = {
    "urban": (1100, 1150, 1250, 1350, 1550, 1750, 1850, 1950, 2000, 1950, 2300, 2050),
    "industrial": (1400, 1500, 1600, 1750, 1850, 1950, 2000, 2100, 2150, 2050, 2600, 2400),
    "bare": (1000, 1100, 1350, 1650, 1900, 2050, 2150, 2250, 2300, 2250, 2900, 2500),
    "sand": (1700, 1900, 2250, 2600, 2800, 2950, 3050, 3150, 3250, 3150, 3700, 3150),
    "arable": (500, 600, 900, 950, 1350, 2100, 2450, 2650, 2750, 2650, 2600, 1750),
    "crops": (450, 550, 800, 750, 1200, 2100, 2450, 2650, 2750, 2650, 2300, 1450),
    "grass": (400, 450, 850, 600, 1150, 2700, 3200, 3450, 3550, 3450, 2200, 1150),
    "broadleaf": (300, 320, 600, 350, 950, 2650, 3250, 3500, 3600, 3500, 1750, 800),
    "conifer": (240, 250, 430, 240, 650, 1650, 1950, 2100, 2200, 2100, 1050, 480),
    "shrub": (380, 420, 700, 520, 1050, 2050, 2400, 2600, 2700, 2600, 2050, 1150),
    "wetland": (380, 420, 620, 480, 800, 1450, 1650, 1750, 1800, 1750, 1100, 650),
    "water": (700, 620, 560, 330, 270, 210, 190, 160, 150, 120, 90, 70),
    "burnt": (300, 350, 450, 520, 680, 900, 1000, 1100, 1150, 1100, 1800, 1600),
}
# CORINE class -> (spectrum, texture, prior weight). Textures: parcels (fields), blocks
# (buildings), crowns (tree canopy), smooth (water, sand), patchy (mixed vegetation).
_CLASSES = {
    "Continuous urban fabric": ("urban", "blocks", 2),
    "Discontinuous urban fabric": ("urban", "patchy", 8),
    "Industrial or commercial units": ("industrial", "blocks", 3),
    "Road and rail networks and associated land": ("industrial", "parcels", 0.5),
    "Port areas": ("industrial", "blocks", 0.3),
    "Airports": ("industrial", "smooth", 0.3),
    "Mineral extraction sites": ("bare", "patchy", 0.8),
    "Dump sites": ("bare", "blocks", 0.3),
    "Construction sites": ("bare", "blocks", 0.3),
    "Green urban areas": ("grass", "blocks", 0.5),
    "Sport and leisure facilities": ("grass", "parcels", 0.8),
    "Non-irrigated arable land": ("arable", "parcels", 14),
    "Permanently irrigated land": ("arable", "parcels", 2),
    "Rice fields": ("arable", "smooth", 0.8),
    "Vineyards": ("crops", "parcels", 1.5),
    "Fruit trees and berry plantations": ("crops", "crowns", 1),
    "Olive groves": ("crops", "crowns", 2),
    "Pastures": ("grass", "parcels", 10),
    "Annual crops associated with permanent crops": ("crops", "parcels", 1),
    "Complex cultivation patterns": ("arable", "patchy", 8),
    LABELS_43[20]: ("shrub", "patchy", 9),  # land principally occupied by agriculture ...
    "Agro-forestry areas": ("shrub", "crowns", 2),
    "Broad-leaved forest": ("broadleaf", "crowns", 9),
    "Coniferous forest": ("conifer", "crowns", 14),
    "Mixed forest": ("conifer", "patchy", 15),
    "Natural grassland": ("grass", "smooth", 2),
    "Moors and heathland": ("shrub", "smooth", 1.5),
    "Sclerophyllous vegetation": ("shrub", "crowns", 2),
    "Transitional woodland/shrub": ("shrub", "crowns", 13),
    "Beaches, dunes, sands": ("sand", "smooth", 0.8),
    "Bare rock": ("bare", "smooth", 0.8),
    "Sparsely vegetated areas": ("bare", "patchy", 1),
    "Burnt areas": ("burnt", "patchy", 0.3),
    "Inland marshes": ("wetland", "patchy", 1),
    "Peatbogs": ("wetland", "smooth", 2),
    "Salt marshes": ("wetland", "patchy", 0.6),
    "Salines": ("sand", "parcels", 0.3),
    "Intertidal flats": ("wetland", "smooth", 0.3),
    "Water courses": ("water", "smooth", 1.5),
    "Water bodies": ("water", "smooth", 7),
    "Coastal lagoons": ("water", "smooth", 0.8),
    "Estuaries": ("water", "smooth", 0.4),
    "Sea and ocean": ("water", "smooth", 6),
}
_REGION_COUNTS = (1, 2, 3, 4)
_REGION_COUNT_PROBS = (0.2, 0.35, 0.3, 0.15)
_MIN_REGION_SHARE = 0.04  # smaller regions merge into the largest one
_PATCH_NAME = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d{6}_\d{1,2}_\d{1,2}$")


def re_patch_name(name: str) -> bool:
    """Whether `name` has the form of a BigEarthNet-S2 patch name (S2A_MSIL2A_<date>T<time>_h_v)."""
    return _PATCH_NAME.match(name) is not None


# ---------------------------------------------------------------------------------------------
# Public API


def write_demo_dataset(root: str | os.PathLike, *, num_patches: int, seed: int) -> pathlib.Path:
    """Writes `num_patches` listed patches (plus a few unlisted ones) and returns the root.

    The output is a pure function of the arguments; it is written into a temporary sibling
    folder renamed to `root` at the end. Raises `FileExistsError` if `root` exists.
    """
    if num_patches < 10:
        raise ValueError(f"num_patches must be >= 10, got {num_patches}")
    root = pathlib.Path(root).absolute()
    layout_seq, patches_seq = np.random.SeedSequence(seed).spawn(2)
    layout_rng = np.random.default_rng(layout_seq)
    unlisted = max(1, round(num_patches * UNLISTED_SHARE))
    scenes = [_scene(i, layout_rng) for i in range(max(2, math.ceil(num_patches / 300)))]
    names = _patch_names(num_patches + unlisted, scenes, layout_rng)
    order = layout_rng.permutation(len(names))
    listed_set = {names[i][0] for i in order[:num_patches]}
    listed = [name for name, _ in names if name in listed_set]
    label_counts = dict.fromkeys(LABELS_43, 0)
    with staged_folder(root) as tmp:
        for (name, scene), patch_seq in zip(names, patches_seq.spawn(len(names))):
            rng = np.random.default_rng(patch_seq)
            if name in listed_set:
                bands, labels = render_patch(scene, rng)
                for label in labels:
                    label_counts[label] += 1
            else:
                bands, labels = _render_cloud(rng), ["Mixed forest"]
            _write_patch(tmp / name, bands, labels, scene, name)
        shuffled = [listed[i] for i in layout_rng.permutation(len(listed))]
        start = 0
        for index, (split, share) in enumerate(SPLIT_SHARES):
            stop = len(shuffled) if index == len(SPLIT_SHARES) - 1 else start + round(
                share * len(shuffled))
            lines = "".join(f"{name}\n" for name in shuffled[start:stop])
            (tmp / SPLIT_FILES[split]).write_text(lines)
            start = stop
        (tmp / README_FILE).write_text(_readme(num_patches, unlisted, label_counts, seed))
    return root


def spectrum_of(label: str) -> np.ndarray:
    """The class's 12-band reflectance x 10000: its kind's spectrum with a fixed variation."""
    kind = _CLASSES[label][0]
    variation = np.random.default_rng(LABELS_43.index(label)).uniform(0.9, 1.1, len(BANDS))
    return np.asarray(_SPECTRA[kind], np.float64) * variation


def render_patch(scene: dict, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list]:
    """One patch: uint16 band arrays at their native sizes, and its 43-class labels."""
    classes = list(_CLASSES)
    weights = np.array([_CLASSES[c][2] for c in classes], np.float64)
    count = int(rng.choice(_REGION_COUNTS, p=_REGION_COUNT_PROBS))
    chosen = list(rng.choice(len(classes), size=count, replace=False, p=weights / weights.sum()))
    regions = _regions(count, rng)
    shares = np.bincount(regions.ravel(), minlength=count) / regions.size
    largest = int(np.argmax(shares))
    for region in np.flatnonzero(shares < _MIN_REGION_SHARE):
        regions[regions == region] = largest
    present = sorted(set(regions.ravel().tolist()))
    reflectance = np.zeros((PATCH_SIDE, PATCH_SIDE, len(BANDS)))
    for region in present:
        label = classes[chosen[region]]
        texture = _texture(_CLASSES[label][1], rng)
        inside = regions == region
        reflectance[inside] = spectrum_of(label) * texture[inside][:, None]
    haze = scene["haze"] * np.linspace(1.0, 0.1, len(BANDS))  # strongest at short wavelengths
    reflectance = reflectance * scene["illumination"] + haze
    reflectance *= 1.0 + 0.02 * rng.standard_normal(reflectance.shape)
    labels = sorted({classes[chosen[r]] for r in present}, key=LABELS_43.index)
    return _to_bands(reflectance), labels


# ---------------------------------------------------------------------------------------------
# Land cover


def _smooth(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _regions(count: int, rng: np.random.Generator) -> np.ndarray:
    """(120, 120) region index: a Voronoi partition with borders bent by smooth noise."""
    rows, cols = np.mgrid[0:PATCH_SIDE, 0:PATCH_SIDE].astype(np.float64)
    rows += 9.0 * _smooth((PATCH_SIDE, PATCH_SIDE), 12, rng)
    cols += 9.0 * _smooth((PATCH_SIDE, PATCH_SIDE), 12, rng)
    seeds = rng.uniform(0, PATCH_SIDE, size=(count, 2))
    distances = np.stack([np.hypot(rows - r, cols - c) for r, c in seeds])
    return np.argmin(distances, axis=0)


def _texture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative brightness pattern around 1."""
    shape = (PATCH_SIDE, PATCH_SIDE)
    if kind == "parcels":  # fields: rectangles of their own brightness
        rows = np.cumsum(rng.integers(8, 25, size=12))
        cols = np.cumsum(rng.integers(8, 25, size=12))
        r_index = np.searchsorted(rows, np.arange(PATCH_SIDE))
        c_index = np.searchsorted(cols, np.arange(PATCH_SIDE))
        parcel = rng.uniform(0.75, 1.25, size=(13, 13))
        return parcel[np.ix_(r_index, c_index)] * (1 + 0.03 * _smooth(shape, 1, rng))
    if kind == "blocks":  # buildings: bright and dark squares of a few pixels
        blocks = rng.uniform(0.6, 1.4, size=(PATCH_SIDE // 3 + 1,) * 2)
        return np.kron(blocks, np.ones((3, 3)))[:PATCH_SIDE, :PATCH_SIDE]
    if kind == "crowns":  # canopy: fine grain
        return 1.0 + 0.12 * _smooth(shape, 0.8, rng)
    if kind == "patchy":  # mixed cover: blotches
        return 1.0 + 0.15 * _smooth(shape, 4, rng)
    return 1.0 + 0.03 * _smooth(shape, 6, rng)  # smooth


def _render_cloud(rng: np.random.Generator) -> dict[str, np.ndarray]:
    brightness = 6000 + 2500 * _smooth((PATCH_SIDE, PATCH_SIDE), 10, rng)
    reflectance = np.repeat(np.clip(brightness, 3000, None)[..., None], len(BANDS), axis=2)
    return _to_bands(reflectance)


def _to_bands(reflectance: np.ndarray) -> dict[str, np.ndarray]:
    """10 m rendering -> each band at its grid: 20 m and 60 m bands are area averages."""
    bands = {}
    for index, band in enumerate(BANDS):
        factor = GRID_METRES[band] // 10
        plane = reflectance[..., index]
        side = PATCH_SIDE // factor
        plane = plane.reshape(side, factor, side, factor).mean(axis=(1, 3))
        bands[band] = np.clip(np.round(plane), 0, 65535).astype(np.uint16)
    return bands


# ---------------------------------------------------------------------------------------------
# Scenes, names, files


def _scene(index: int, rng: np.random.Generator) -> dict:
    mission = str(rng.choice(["S2A", "S2B"]))
    day = np.datetime64("2017-06-01") + int(rng.integers(0, 365))
    clock = f"{int(rng.integers(9, 12)):02d}{int(rng.integers(0, 60)):02d}" \
            f"{int(rng.integers(0, 60)):02d}"
    zone = int(rng.choice([29, 32, 33, 34, 35]))
    date = str(day).replace("-", "")
    return {
        "prefix": f"{mission}_MSIL2A_{date}T{clock}",
        "acquisition_date": f"{day} {clock[:2]}:{clock[2:4]}:{clock[4:]}",
        "tile_source": f"{mission}_MSIL1C_{date}T{clock}_N0205_R0{index:02d}_T{zone}UUP_"
                       f"{date}T{clock}",
        "zone": zone,
        "origin": (float(rng.integers(3, 7)) * 1e5, float(rng.integers(50, 70)) * 1e5),
        "haze": float(rng.uniform(0, 500)),
        "illumination": float(rng.uniform(0.9, 1.1)),
    }


def _patch_names(count: int, scenes: list[dict],
                 rng: np.random.Generator) -> list[tuple[str, dict]]:
    names = []
    per_scene = math.ceil(count / len(scenes))
    for scene in scenes:
        cells = rng.choice(100 * 100, size=per_scene, replace=False)
        for cell in sorted(cells.tolist()):
            horizontal, vertical = divmod(cell, 100)
            names.append((f"{scene['prefix']}_{horizontal}_{vertical}", scene))
    return names[:count]


def _projection(zone: int) -> str:
    return (f'PROJCS["WGS 84 / UTM zone {zone}N",GEOGCS["WGS 84",DATUM["WGS_1984",'
            f'SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
            f'UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
            f'PARAMETER["central_meridian",{6 * zone - 183}],PARAMETER["scale_factor",0.9996],'
            f'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
            f'AUTHORITY["EPSG","{32600 + zone}"]]')


def _write_patch(folder: pathlib.Path, bands: dict[str, np.ndarray], labels: list[str],
                 scene: dict, name: str) -> None:
    folder.mkdir()
    horizontal, vertical = (int(x) for x in name.rsplit("_", 2)[1:])
    ulx = scene["origin"][0] + horizontal * PATCH_METRES
    uly = scene["origin"][1] - vertical * PATCH_METRES
    for band, pixels in bands.items():
        metres = float(GRID_METRES[band])
        geokeys = (1, 1, 0, 3,  # GeoKeyDirectory header: version, revision, 3 keys
                   1024, 0, 1, 1,  # GTModelType: projected
                   1025, 0, 1, 1,  # GTRasterType: pixel is area
                   3072, 0, 1, 32600 + scene["zone"])  # ProjectedCSType: WGS 84 / UTM north
        tifffile.imwrite(band_path(folder, band), pixels, photometric="minisblack",
                         extratags=[(33550, "d", 3, (metres, metres, 0.0), False),
                                    (33922, "d", 6, (0.0, 0.0, 0.0, ulx, uly, 0.0), False),
                                    (34735, "H", len(geokeys), geokeys, False)])
    metadata = {"labels": labels,
                "coordinates": {"ulx": ulx, "uly": uly, "lrx": ulx + PATCH_METRES,
                                "lry": uly - PATCH_METRES},
                "projection": _projection(scene["zone"]),
                "tile_source": scene["tile_source"],
                "acquisition_date": scene["acquisition_date"]}
    labels_path(folder).write_text(json.dumps(metadata))


def _readme(num_patches: int, unlisted: int, label_counts: dict[str, int], seed: int) -> str:
    kept = {name: n for name, n in label_counts.items() if n}
    lines = [
        "SYNTHETIC DEMO DATA written by jaxtl.data.bigearthnet.demo; not BigEarthNet.",
        f"seed {seed}: {num_patches} listed patches (train/val/test.csv) and {unlisted} unlisted "
        f"cloud patches, in the layout of BigEarthNet-S2 v1.0.",
        "Patches per 43-class label (19-class target in brackets):",
        *(f"  {n:5d}  {name} [{TO_19[name] or 'dropped'}]" for name, n in kept.items()),
    ]
    return "\n".join(lines) + "\n"
