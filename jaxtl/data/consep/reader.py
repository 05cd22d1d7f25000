"""CoNSeP (colorectal nuclear segmentation and phenotypes) as nucleus-centred patches.

The download unpacks as

    root/Train/Images/train_1.png ... train_27.png   1000x1000 H&E tiles (RGB or RGBA)
    root/Train/Labels/train_1.mat ...                 one .mat per tile
    root/Test/Images/test_1.png ... test_14.png
    root/Test/Labels/test_1.mat ...

Each .mat holds `inst_map` (HxW, 0 background, 1..N instance ids), `type_map` (HxW, 0..7),
`inst_type` (Nx1, the type of instance i + 1 in row i) and `inst_centroid` (Nx2, x = column
first, then y = row). Only `inst_type` and `inst_centroid` are read here.

Patches: one `patch_size` x `patch_size` patch per nucleus, cut around the pixel nearest to
its centroid (halves round up): rows round(y) - S // 2 ... round(y) - S // 2 + S - 1, likewise
columns, so for an even S the centroid pixel sits just below and right of the patch centre. Where a patch reaches
past the tile border the tile is extended by the `border` rule: 'reflect' mirrors the tile
about its edge pixels (numpy.pad mode 'reflect'), 'zero' pads with black. Nuclei whose type is
not 1..7, or whose centroid lies outside the tile or is not a number, are left out and counted
in the log.

The patches of all tiles are cut once and cached under `<cache_dir>/consep/<key>/` as
`patches.npy` (N, S, S, 3) uint8 plus `index.npz` (tile, folder, instance id, type, centroid per
patch); the key hashes the format version, the root, the patch size, the border rule and the
name, size and modification time of every tile file, so a changed dataset is cut again. A record's
path is `<cache>/patches.npy#<row>` (read by `jaxtl.data.decoders.PatchArrayDecoder`), its patient is the
tile name.

Labels (`task`): 'type7', the 7 CoNSeP types (1 other, 2 inflammatory, 3 healthy epithelial,
4 dysplastic/malignant epithelial, 5 fibroblast, 6 muscle, 7 endothelial) as classes 0..6; or
'type4', the usual merge into other, inflammatory, epithelial {3, 4} and spindle-shaped {5, 6, 7}.

Splits (`split`):
- 'random': patches of all 41 tiles pooled and permuted with `numpy.random.default_rng(seed)`;
  the first round(test_fraction * N) are the test split, the next round(val_fraction * N) the
  validation split. Patches of one tile land on both sides, as in many patch-level papers.
- 'tiles': whole tiles held out, so no tile is shared between splits. `test_tiles = 0` takes the
  official Test/ tiles as the test split; `test_tiles = K > 0` draws K of all tiles instead
  (seeded). `val_tiles` tiles of the remaining ones form the validation split (seeded).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.io
from absl import logging
from PIL import Image

from jaxtl.core import tasks
from jaxtl.core.atomic import staged_folder
from jaxtl.data.cache import keyed_path
from jaxtl.data.records import DataError, DatasetSplits, Record

NAME = "consep"
FOLDERS = ("Train", "Test")
IMAGES_DIR, LABELS_DIR = "Images", "Labels"  # inside each of FOLDERS
TYPE_NAMES = ("other", "inflammatory", "healthy epithelial", "malignant epithelial",
              "fibroblast", "muscle", "endothelial")
MERGED_NAMES = ("other", "inflammatory", "epithelial", "spindle-shaped")
MERGED_CLASS_OF_TYPE = {1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3}
TASKS = ("type7", "type4")
SPLITS = ("random", "tiles")
BORDERS = ("reflect", "zero")
CACHE_FORMAT_VERSION = 1
_TILE_NAME = re.compile(r"^(train|test)_(\d+)$")


@dataclasses.dataclass(frozen=True)
class Tile:
    name: str  # "train_1"
    folder: str  # "Train" or "Test"
    image: pathlib.Path
    labels: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Nuclei:
    """The annotated nuclei of one tile, in instance-id order."""

    instance: np.ndarray  # (N,) int: instance id (row + 1 in the .mat)
    type: np.ndarray  # (N,) int: 1..7
    centroid_xy: np.ndarray  # (N, 2) float: x (column), y (row)


@dataclasses.dataclass(frozen=True)
class PatchIndex:
    """The cached patches and what each of them is."""

    patches_file: pathlib.Path  # (N, S, S, 3) uint8 .npy
    tile: np.ndarray  # (N,) str
    folder: np.ndarray  # (N,) str: "Train" or "Test"
    instance: np.ndarray  # (N,) int
    type: np.ndarray  # (N,) int 1..7
    centroid_xy: np.ndarray  # (N, 2) float

    def __len__(self) -> int:
        return len(self.type)


def class_names(task: str) -> tuple[str, ...]:
    if task not in TASKS:
        raise ValueError(f"unknown CoNSeP task {task!r}; choose one of {', '.join(TASKS)}")
    return TYPE_NAMES if task == "type7" else MERGED_NAMES


def labels_of(types: np.ndarray, task: str) -> np.ndarray:
    """CoNSeP types 1..7 -> class indices of `task`."""
    class_names(task)
    if task == "type7":
        return np.asarray(types, np.int64) - 1
    return np.array([MERGED_CLASS_OF_TYPE[int(t)] for t in types], np.int64)


def _tile_order(name: str) -> tuple[str, int]:
    match = _TILE_NAME.match(name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def find_tiles(root: pathlib.Path) -> list[Tile]:
    """Every Train/ and Test/ tile with its .mat, in natural order (train_2 before train_10)."""
    if not root.is_dir():
        raise DataError(f"CoNSeP root {root} does not exist; set --config.data.root to the "
                        f"folder holding Train/ and Test/, or leave it empty for the demo data")
    tiles = []
    for folder in FOLDERS:
        images, labels = root / folder / IMAGES_DIR, root / folder / LABELS_DIR
        if not images.is_dir() or not labels.is_dir():
            raise DataError(f"{root / folder} must hold Images/ (.png tiles) and Labels/ (.mat "
                            f"files): a CoNSeP root holds Train/ and Test/ as unpacked from "
                            f"the download")
        pngs = sorted(images.glob("*.png"), key=lambda p: _tile_order(p.stem))
        if not pngs:
            raise DataError(f"{images} holds no .png tiles")
        missing = [p.stem for p in pngs if not (labels / f"{p.stem}.mat").is_file()]
        if missing:
            raise DataError(f"{len(missing)} tiles in {images} have no .mat in {labels} "
                            f"(first: {', '.join(missing[:3])}); unpack the complete download")
        tiles += [Tile(p.stem, folder, p, labels / f"{p.stem}.mat") for p in pngs]
    return tiles


def unreadable_tile(error: DataError, left_out: str) -> DataError:
    """What to do about a tile that cannot be read (without data.bad_images=skip)."""
    return DataError(f"{error}: replace the file, or set --config.data.bad_images=skip to "
                     f"leave {left_out} out")


def load_mat(path: pathlib.Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A CoNSeP label file (.mat), which must hold `keys`; DataError naming the file if not."""
    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # noqa: BLE001 - scipy raises many kinds on a damaged file
        raise DataError(f"{path} cannot be read as a .mat file ({error})") from error
    for key in keys:
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise DataError(f"{path} has no {key!r}; a CoNSeP label file holds inst_map, "
                            f"type_map, inst_type and inst_centroid (found: {found})")
    return mat


def read_nuclei(path: pathlib.Path) -> Nuclei:
    """`inst_type` and `inst_centroid` of one .mat; instance i + 1 is row i."""
    mat = load_mat(path, ("inst_type", "inst_centroid"))
    types = np.asarray(mat["inst_type"], np.float64)
    centroids = np.asarray(mat["inst_centroid"], np.float64)
    if types.size == 0 and centroids.size == 0:
        return Nuclei(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)))
    types = types.reshape(-1)
    if centroids.ndim != 2 or centroids.shape[1] != 2 or len(centroids) != len(types):
        raise DataError(f"{path}: inst_centroid has shape {centroids.shape}; expected "
                        f"({len(types)}, 2), one (x, y) row per entry of inst_type")
    whole = np.where(np.isfinite(types) & (types == np.round(types)), types, 0).astype(np.int64)
    return Nuclei(np.arange(1, len(types) + 1), whole, centroids)


def read_tile(path: pathlib.Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; an alpha channel is dropped."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except Exception as error:  # noqa: BLE001 - Pillow raises many kinds on damaged files
        raise DataError(f"{path} cannot be read as an image ({error})") from error


def patch_origin(centroid_xy: np.ndarray, size: int) -> np.ndarray:
    """(row, col) of the top-left pixel of each nucleus's patch."""
    centre = np.floor(centroid_xy[:, ::-1] + 0.5).astype(np.int64)  # round half up; (row, col)
    return centre - size // 2


def cut_patches(image: np.ndarray, centroid_xy: np.ndarray, size: int,
                border: str) -> np.ndarray:
    """(N, size, size, C) patches around the centroids; the tile is extended by `border`."""
    if border not in BORDERS:
        raise ValueError(f"unknown border rule {border!r}; choose one of {', '.join(BORDERS)}")
    pad = ((size, size), (size, size), (0, 0))
    padded = (np.pad(image, pad, mode="reflect") if border == "reflect"
              else np.pad(image, pad, mode="constant"))
    origins = patch_origin(centroid_xy, size) + size
    out = np.empty((len(origins), size, size, image.shape[-1]), image.dtype)
    for i, (row, col) in enumerate(origins):
        out[i] = padded[row:row + size, col:col + size]
    return out


def tile_files_key(root: pathlib.Path, tiles: Sequence[Tile]) -> list[list]:
    """What a cache of `tiles` depends on: each tile file's path, size and modification time."""
    files = []
    for tile in tiles:
        for path in (tile.image, tile.labels):
            stat = path.stat()
            files.append([str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
    return files


def _cache_folder(root: pathlib.Path, tiles: Sequence[Tile], size: int, border: str,
                  skip_bad_tiles: bool, cache_dir: str | os.PathLike) -> pathlib.Path:
    return keyed_path(cache_dir, NAME, {"version": CACHE_FORMAT_VERSION, "root": str(root),
                                        "size": size, "border": border,
                                        "files": tile_files_key(root, tiles),
                                        "skip_bad_tiles": skip_bad_tiles})


def build_patch_index(root: str | os.PathLike, *, patch_size: int, border: str,
                      cache_dir: str | os.PathLike,
                      skip_bad_tiles: bool = False) -> PatchIndex:
    """Cuts every nucleus patch once; later calls (and other processes) read the cache.
    A tile image or label file that cannot be read stops with its name, or, with
    `skip_bad_tiles`, is left out (its nuclei with it) and counted in the log."""
    root = pathlib.Path(root).expanduser().resolve()
    tiles = find_tiles(root)
    target = _cache_folder(root, tiles, patch_size, border, skip_bad_tiles, cache_dir)
    if not (target / "index.npz").is_file():
        logging.info("CoNSeP: cutting %dx%d patches (border %s) from %d tiles into %s (once)",
                     patch_size, patch_size, border, len(tiles), target)
        _write_patch_cache(target, tiles, patch_size, border, skip_bad_tiles)
    with np.load(target / "index.npz") as index:
        return PatchIndex(patches_file=target / "patches.npy", tile=index["tile"],
                          folder=index["folder"], instance=index["instance"],
                          type=index["type"], centroid_xy=index["centroid_xy"])


def _write_patch_cache(target: pathlib.Path, tiles: Sequence[Tile], size: int,
                       border: str, skip_bad_tiles: bool) -> None:
    patches, columns = [], {"tile": [], "folder": [], "instance": [], "type": [],
                            "centroid_xy": []}
    bad_type = outside = 0
    unreadable = []
    for tile in tiles:
        try:
            image = read_tile(tile.image)
            nuclei = read_nuclei(tile.labels)
        except DataError as error:
            if not skip_bad_tiles:
                raise unreadable_tile(error, "the tile (and its nuclei)") from None
            unreadable.append(tile.name)
            continue
        height, width = image.shape[:2]
        x, y = nuclei.centroid_xy[:, 0], nuclei.centroid_xy[:, 1]
        typed = (nuclei.type >= 1) & (nuclei.type <= 7)
        inside = (np.isfinite(x) & np.isfinite(y) & (x > -0.5) & (x < width - 0.5)
                  & (y > -0.5) & (y < height - 0.5))
        bad_type += int(np.sum(~typed))
        outside += int(np.sum(typed & ~inside))
        keep = typed & inside
        patches.append(cut_patches(image, nuclei.centroid_xy[keep], size, border))
        columns["tile"] += [tile.name] * int(keep.sum())
        columns["folder"] += [tile.folder] * int(keep.sum())
        columns["instance"].append(nuclei.instance[keep])
        columns["type"].append(nuclei.type[keep])
        columns["centroid_xy"].append(nuclei.centroid_xy[keep])
    if unreadable:
        logging.warning("CoNSeP: left out %d tiles that cannot be read (data.bad_images=skip): "
                        "%s", len(unreadable), ", ".join(unreadable))
    if bad_type or outside:
        logging.warning("CoNSeP: left out %d nuclei whose inst_type is not 1..7 and %d whose "
                        "centroid lies outside their tile", bad_type, outside)
    all_patches = np.concatenate(patches) if patches else np.zeros((0, size, size, 3), np.uint8)
    if len(all_patches) == 0:
        raise DataError("the CoNSeP label files list no usable nuclei")
    try:
        with staged_folder(target) as staging:
            np.save(staging / "patches.npy", all_patches)
            np.savez(staging / "index.npz", tile=np.array(columns["tile"]),
                     folder=np.array(columns["folder"]),
                     instance=np.concatenate(columns["instance"]),
                     type=np.concatenate(columns["type"]),
                     centroid_xy=np.concatenate(columns["centroid_xy"]))
    except FileExistsError:
        pass  # another process wrote the same cache since we looked


def split_random(count: int, *, val_fraction: float, test_fraction: float,
                 seed: int) -> np.ndarray:
    """Split name per patch: a seeded permutation, test first, then validation."""
    order = np.random.default_rng(seed).permutation(count)
    n_test, n_val = round(test_fraction * count), round(val_fraction * count)
    assignment = np.full(count, "train", dtype=object)
    assignment[order[:n_test]] = "test"
    assignment[order[n_test:n_test + n_val]] = "val"
    return assignment


def split_tiles(tiles: Sequence[str], folders: Sequence[str], *, test_tiles: int,
                val_tiles: int, seed: int) -> dict[str, str]:
    """Split name per tile. test_tiles=0: the official Test/ tiles; K > 0: K drawn tiles."""
    rng = np.random.default_rng(seed)
    order = sorted(set(tiles), key=_tile_order)
    folder_of = dict(zip(tiles, folders))
    if test_tiles == 0:
        test = [t for t in order if folder_of[t] == "Test"]
        rest = [t for t in order if folder_of[t] != "Test"]
    else:
        if test_tiles >= len(order):
            raise DataError(f"consep.test_tiles={test_tiles} leaves no tile for training; "
                            f"the dataset has {len(order)} tiles")
        drawn = [order[i] for i in rng.permutation(len(order))]
        test, rest = sorted(drawn[:test_tiles], key=_tile_order), drawn[test_tiles:]
        rest = sorted(rest, key=_tile_order)
    if val_tiles >= len(rest):
        raise DataError(f"consep.val_tiles={val_tiles} leaves no tile for training: "
                        f"{len(rest)} tiles remain after the test tiles")
    val = {rest[i] for i in rng.permutation(len(rest))[:val_tiles]}
    split_of = {t: "test" for t in test}
    split_of |= {t: ("val" if t in val else "train") for t in rest}
    return split_of


def make_records(index: PatchIndex, task: str) -> list[Record]:
    labels = labels_of(index.type, task)
    return [Record(image_id=f"{tile}/{instance}", path=f"{index.patches_file}#{row}",
                   label=int(label), patient=str(tile))
            for row, (tile, instance, label) in enumerate(zip(index.tile, index.instance,
                                                              labels))]


def split_records(index: PatchIndex, records: Sequence[Record], *, split: str,
                  test_tiles: int, val_tiles: int, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, list[Record]]:
    if split not in SPLITS:
        raise ValueError(f"unknown CoNSeP split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "random":
        assignment = split_random(len(records), val_fraction=val_fraction,
                                  test_fraction=test_fraction, seed=seed)
    else:
        split_of = split_tiles(list(index.tile), list(index.folder), test_tiles=test_tiles,
                               val_tiles=val_tiles, seed=seed)
        assignment = [split_of[str(t)] for t in index.tile]
    out: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for record, name in zip(records, assignment):
        out[name].append(record)
    return out


def load(root: str | os.PathLike, *, task: str, patch_size: int, border: str, split: str,
         test_tiles: int, val_tiles: int, val_fraction: float, test_fraction: float,
         split_seed: int, cache_dir: str | os.PathLike, demo: bool = False,
         skip_bad_tiles: bool = False) -> DatasetSplits:
    index = build_patch_index(root, patch_size=patch_size, border=border, cache_dir=cache_dir,
                              skip_bad_tiles=skip_bad_tiles)
    records = make_records(index, task)
    by_split = split_records(index, records, split=split, test_tiles=test_tiles,
                             val_tiles=val_tiles, val_fraction=val_fraction,
                             test_fraction=test_fraction, seed=split_seed)
    return DatasetSplits(name=NAME, task=tasks.multiclass(class_names(task)),
                         train=by_split["train"], val=by_split["val"], test=by_split["test"],
                         demo=demo)
