"""CoNSeP tiles for segmentation: whole tiles as records, random training crops, pixel classes.

The download is read as `reader.py` describes (`Train/` and `Test/`, `Images/*.png`,
`Labels/*.mat`); here each tile's `inst_map` and `type_map` are read too. Every tile is cached
once under `<cache_dir>/consep_seg/<key>/` as `<tile>.npy` (H, W, 4) uint8: RGB plus the type
map (0 background, 1..7), and `<tile>_inst.npy` (H, W) int32: the instance map. The key hashes
the format version, the root and the name, size and modification time of every tile file. A
record is one tile: `path` its cached `.npy`, `patient` and `image_id` its name, `label` 0
(unused: the pixels carry the labels).

Pixel classes (`task`): 'type7', background + the 7 CoNSeP types (classes 0..7); 'type4',
background + other, inflammatory, epithelial, spindle-shaped (HoVer-Net's merge); 'nuclei',
background + nucleus. Nucleus vs background is always scored as well (any foreground class).

Training crops (`CropExample`): a `size` x `size` window at a uniformly random position
(a tile smaller than the window is first mirrored out to it), then with 'flip' a left-right and
an up-down flip each with probability 1/2, with 'rotate' a rotation by a random multiple of 90
degrees (no resampling: labels stay exact), and with `stain_jitter` s > 0 the H&E stain
augmentation of Tellez et al. (2018): RGB -> optical density -> hematoxylin, eosin, DAB
concentrations (the Ruifrok-Johnston matrix, as scikit-image's `rgb2hed`), each scaled by
U(1 - s, 1 + s) and shifted by U(-s, s), and back. The crop leaves as uint8, like every
image on its way to the device: the jitted step normalises it with `data.mean` and `data.std`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence

import numpy as np
from absl import logging

from jaxtl.core.atomic import staged_folder
from jaxtl.data.cache import keyed_path
from jaxtl.data.consep import reader
from jaxtl.data.records import DataError, Record

NAME = "consep_seg"
TASKS = ("type7", "type4", "nuclei")
CACHE_FORMAT_VERSION = 1
NUM_TYPES = 7
# Ruifrok and Johnston's stain vectors (rows: hematoxylin, eosin, DAB), skimage's rgb_from_hed.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def class_names(task: str) -> tuple[str, ...]:
    """The pixel classes of `task`, background first."""
    if task == "type7":
        return ("background", *reader.TYPE_NAMES)
    if task == "type4":
        return ("background", *reader.MERGED_NAMES)
    if task == "nuclei":
        return ("background", "nucleus")
    raise ValueError(f"unknown CoNSeP segmentation task {task!r}; choose one of "
                     f"{', '.join(TASKS)}")


def class_of_type(task: str) -> np.ndarray:
    """(8,) int: the pixel class of each CoNSeP type 0 (background) .. 7."""
    class_names(task)
    if task == "type7":
        return np.arange(NUM_TYPES + 1)
    if task == "type4":
        return np.array([0] + [reader.MERGED_CLASS_OF_TYPE[t] + 1 for t in range(1, 8)])
    return np.array([0] + [1] * NUM_TYPES)


def read_maps(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """(inst_map int32, type_map uint8) of one .mat; types outside 0..7 become 0 (counted by
    the caller)."""
    mat = reader.load_mat(path, ("inst_map", "type_map"))
    inst = np.asarray(mat["inst_map"])
    types = np.asarray(mat["type_map"])
    if inst.ndim != 2 or inst.shape != types.shape:
        raise DataError(f"{path}: inst_map {inst.shape} and type_map {types.shape} must be "
                        f"two maps of the tile's size")
    return inst.astype(np.int32), types


@dataclasses.dataclass(frozen=True)
class TileCache:
    folder: pathlib.Path
    tiles: tuple[reader.Tile, ...]  # the tiles cached (unreadable ones left out with skip)

    def image_file(self, name: str) -> pathlib.Path:
        return self.folder / f"{name}.npy"

    def instances_file(self, name: str) -> pathlib.Path:
        return self.folder / f"{name}_inst.npy"


def _cache_folder(root: pathlib.Path, tiles: Sequence[reader.Tile], skip_bad_tiles: bool,
                  cache_dir: str | os.PathLike) -> pathlib.Path:
    return keyed_path(cache_dir, NAME, {"version": CACHE_FORMAT_VERSION, "root": str(root),
                                        "files": reader.tile_files_key(root, tiles),
                                        "skip_bad_tiles": skip_bad_tiles})


def build_tile_cache(root: str | os.PathLike, *, cache_dir: str | os.PathLike,
                     skip_bad_tiles: bool = False) -> TileCache:
    """Caches every tile once; later calls (and other processes) read the cache."""
    root = pathlib.Path(root).expanduser().resolve()
    tiles = reader.find_tiles(root)
    target = _cache_folder(root, tiles, skip_bad_tiles, cache_dir)
    if not target.is_dir():
        logging.info("CoNSeP segmentation: caching %d tiles into %s (once)", len(tiles), target)
        _write_tile_cache(target, tiles, skip_bad_tiles)
    cached = tuple(t for t in tiles if (target / f"{t.name}.npy").is_file())
    return TileCache(target, cached)


def _write_tile_cache(target: pathlib.Path, tiles: Sequence[reader.Tile],
                      skip_bad_tiles: bool) -> None:
    unreadable, bad_types = [], 0
    try:
        with staged_folder(target) as staging:
            for tile in tiles:
                try:
                    image = reader.read_tile(tile.image)
                    inst, types = read_maps(tile.labels)
                    if inst.shape != image.shape[:2]:
                        raise DataError(f"{tile.labels}: maps of {inst.shape} for a tile of "
                                        f"{image.shape[:2]}")
                except DataError as error:
                    if not skip_bad_tiles:
                        raise reader.unreadable_tile(error, "the tile") from None
                    unreadable.append(tile.name)
                    continue
                valid = (types >= 0) & (types <= NUM_TYPES)
                bad_types += int(np.sum(~valid))
                types = np.where(valid, types, 0).astype(np.uint8)
                np.save(staging / f"{tile.name}.npy", np.concatenate([image, types[..., None]],
                                                                     axis=-1))
                np.save(staging / f"{tile.name}_inst.npy", inst)
    except FileExistsError:
        pass  # another process wrote the same cache since we looked
    if unreadable:
        logging.warning("CoNSeP segmentation: left out %d tiles that cannot be read "
                        "(data.bad_images=skip): %s", len(unreadable), ", ".join(unreadable))
    if bad_types:
        logging.warning("CoNSeP segmentation: %d pixels of type_map outside 0..7 were taken "
                        "as background", bad_types)


def records(cache: TileCache) -> list[Record]:
    return [Record(image_id=t.name, path=str(cache.image_file(t.name)), label=0,
                   patient=t.name) for t in cache.tiles]


def instances_path(image_path: str) -> pathlib.Path:
    path = pathlib.Path(image_path)
    return path.with_name(f"{path.stem}_inst.npy")


def read_tile(path: str, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, pixel classes (H, W) int32, instances (H, W) int32) of a
    cached tile."""
    tile = np.load(path)
    classes = class_of_type(task)[tile[..., 3]].astype(np.int32)
    return tile[..., :3], classes, np.load(instances_path(path))


def stain_jitter(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """H&E(+DAB) concentrations scaled by U(1 - sigma, 1 + sigma) and shifted by
    U(-sigma, sigma) per stain (Tellez et al. 2018); uint8 RGB in and out."""
    rgb = np.maximum(image.astype(np.float64) / 255.0, 1e-6)
    stains = (-np.log(rgb)) @ HED_FROM_RGB
    alpha = rng.uniform(1 - sigma, 1 + sigma, size=3)
    beta = rng.uniform(-sigma, sigma, size=3)
    rgb = np.exp(-((stains * alpha + beta) @ RGB_FROM_HED))
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class CropExample:
    """Grain RandomMap: a tile Record -> one random training crop and its pixel classes."""

    size: int
    task: str
    flip: bool = True
    rotate: bool = True
    stain_sigma: float = 0.0

    def __call__(self, record: Record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        tile = np.load(record.path, mmap_mode="r")
        height, width = tile.shape[:2]
        if height < self.size or width < self.size:
            pad = ((0, max(0, self.size - height)), (0, max(0, self.size - width)), (0, 0))
            tile = np.pad(np.asarray(tile), pad, mode="symmetric")
            height, width = tile.shape[:2]
        top = int(rng.integers(0, height - self.size + 1))
        left = int(rng.integers(0, width - self.size + 1))
        crop = np.array(tile[top:top + self.size, left:left + self.size])
        flips, turns = rng.uniform(size=2) < 0.5, int(rng.integers(4))
        if self.flip:
            crop = crop[:, ::-1] if flips[0] else crop
            crop = crop[::-1] if flips[1] else crop
        if self.rotate:
            crop = np.rot90(crop, turns)
        image = crop[..., :3]
        if self.stain_sigma > 0:
            image = stain_jitter(image, self.stain_sigma, rng)
        labels = class_of_type(self.task)[crop[..., 3]].astype(np.int32)
        return {"image": np.ascontiguousarray(image, np.uint8),
                "label": np.ascontiguousarray(labels), "valid": np.bool_(True)}
