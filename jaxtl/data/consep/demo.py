"""Synthetic demo data in the on-disk layout of CoNSeP.

`write_demo_dataset(root, ...)` writes what the real download holds, so one reader serves both:

    root/Train/Images/train_1.png   RGB H&E-like tile
    root/Train/Labels/train_1.mat   inst_map, type_map, inst_type (Nx1), inst_centroid (Nx2: x, y)
    root/Test/Images/test_1.png ...
    root/DEMO_README.txt            says the data are synthetic (seed, counts per type)

Tiles are painted in stain space: hematoxylin and eosin concentrations are mixed with the
Ruifrok-Johnston optical densities (intensity = 10^-(c_H h + c_E e)), so colours are H&E-like:
pink eosin stroma with wavy fibres and white spaces, glands (a white lumen in a ring of purple
cytoplasm lined by epithelial nuclei), small vessels, and blue-purple nuclei. The seven types
differ as they do under the microscope, in size, shape, stain and context:

    1 other                 medium, irregular outline, pale
    2 inflammatory          small, round, very dark; in clusters
    3 healthy epithelial    oval, smooth, even chromatin; radial in regular glands
    4 malignant epithelial  large, irregular, vesicular (pale centre, dark rim, nucleoli)
    5 fibroblast            thin pointed spindle along the stroma fibres, dark
    6 muscle                blunt cigar along the fibres in dense pink cytoplasm, paler
    7 endothelial           thin, curved, hugging a small vessel lumen

Type appearances overlap (sizes, stain), and in 30 % of muscle and endothelial nuclei the
telltale cytoplasm or lumen is missing. Every tile has its own stain strength and hue, focus,
noise, magnification and mix of types (drawn around the dataset-wide mix `TYPE_PROBS`), so tiles
differ as real ones do and a tile-held-out split is harder than a random one. Nucleus sizes are in pixels for tiles of about 256 px and 32 px patches.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib

import numpy as np
import scipy.io
from PIL import Image
from scipy import ndimage

from jaxtl.core.atomic import staged_folder
from jaxtl.data.consep.reader import FOLDERS, IMAGES_DIR, LABELS_DIR
from jaxtl.data.demo_store import README_FILE

NUM_TYPES = 7
MIN_TILE_SIZE = 96  # px: room for the glands and vessels the tiles draw
# Dataset-wide share of types 1..7. Real CoNSeP is dominated by epithelial, spindle-shaped and
# inflammatory nuclei with few "other"; the demo keeps that order but softens it.
TYPE_PROBS = (0.06, 0.20, 0.14, 0.24, 0.18, 0.09, 0.09)
TILE_MIX_CONCENTRATION = 12.0  # Dirichlet concentration of a tile's type mix around TYPE_PROBS
TEST_SHARE = 14 / 41  # real CoNSeP: 27 Train and 14 Test tiles
H_STAIN = np.array([0.650, 0.704, 0.286])  # Ruifrok and Johnston (2001), optical density
E_STAIN = np.array([0.072, 0.990, 0.105])


@dataclasses.dataclass(frozen=True)
class _Look:
    """How one nucleus type is drawn: semi-axes in pixels, stain, outline and shape."""

    major: tuple[float, float]
    minor: tuple[float, float]
    hematoxylin: tuple[float, float]
    irregular: float  # amplitude of outline wobble, as a fraction of the radius
    shape: str  # ellipse | vesicular | spindle | cigar | curved


_LOOKS = {
    1: _Look((4.0, 7.5), (3.0, 6.0), (0.45, 0.90), 0.20, "ellipse"),
    2: _Look((2.8, 4.5), (2.5, 4.2), (1.00, 1.60), 0.05, "ellipse"),
    3: _Look((5.5, 8.0), (3.0, 5.0), (0.70, 1.00), 0.05, "ellipse"),
    4: _Look((6.5, 10.0), (4.5, 8.0), (0.75, 1.05), 0.14, "vesicular"),
    5: _Look((6.5, 10.5), (1.5, 2.8), (0.85, 1.25), 0.00, "spindle"),
    6: _Look((7.0, 11.0), (2.2, 3.4), (0.60, 0.95), 0.00, "cigar"),
    7: _Look((5.0, 8.5), (1.5, 2.6), (0.80, 1.15), 0.00, "curved"),
}


@dataclasses.dataclass
class _Tile:
    """Stain concentration fields and annotations of one tile under construction."""

    hematoxylin: np.ndarray  # (S, S) float
    eosin: np.ndarray
    inst_map: np.ndarray  # (S, S) int32
    type_map: np.ndarray
    magnification: float = 1.0  # this tile's scale of every nucleus size
    types: list[int] = dataclasses.field(default_factory=list)

    @property
    def size(self) -> int:
        return self.inst_map.shape[0]


# ---------------------------------------------------------------------------------------------
# Public API


def write_demo_dataset(root: str | os.PathLike, *, num_tiles: int, tile_size: int,
                       seed: int) -> pathlib.Path:
    """Writes `num_tiles` synthetic tiles (about a third under Test/) and returns the root.

    The output is a pure function of the arguments. It is written into a temporary sibling
    folder that is renamed to `root` at the end, so an interrupted write never leaves a partial
    dataset. Raises `FileExistsError` if `root` exists.
    """
    if num_tiles < 3:
        raise ValueError(f"num_tiles must be >= 3, got {num_tiles}")
    if tile_size < MIN_TILE_SIZE:
        raise ValueError(f"tile_size must be >= {MIN_TILE_SIZE}, got {tile_size}")
    root = pathlib.Path(root).absolute()
    num_test = max(1, round(num_tiles * TEST_SHARE))
    train_folder, test_folder = FOLDERS
    names = ([(train_folder, f"train_{i}") for i in range(1, num_tiles - num_test + 1)]
             + [(test_folder, f"test_{i}") for i in range(1, num_test + 1)])
    seeds = np.random.SeedSequence(seed).spawn(len(names))
    counts = np.zeros(NUM_TYPES + 1, np.int64)
    with staged_folder(root) as tmp:
        for folder in FOLDERS:
            (tmp / folder / IMAGES_DIR).mkdir(parents=True)
            (tmp / folder / LABELS_DIR).mkdir()
        for (folder, name), tile_seed in zip(names, seeds):
            rgb, labels = render_tile(tile_size, np.random.default_rng(tile_seed))
            Image.fromarray(rgb).save(tmp / folder / IMAGES_DIR / f"{name}.png")
            scipy.io.savemat(tmp / folder / LABELS_DIR / f"{name}.mat", labels)
            counts += np.bincount(labels["inst_type"].reshape(-1).astype(np.int64),
                                  minlength=NUM_TYPES + 1)
        (tmp / README_FILE).write_text(_readme(names, counts, tile_size, seed))
    return root


def render_tile(size: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One tile: (size, size, 3) uint8 RGB and its CoNSeP .mat contents."""
    mix = rng.dirichlet(TILE_MIX_CONCENTRATION * np.asarray(TYPE_PROBS))
    count = int(rng.integers(size * size // 700, size * size // 500))
    types = rng.choice(np.arange(1, NUM_TYPES + 1), size=count, p=mix)
    fibre_angle = float(rng.uniform(0, math.pi))
    tile = _Tile(*_stroma(size, fibre_angle, rng),
                 inst_map=np.zeros((size, size), np.int32),
                 type_map=np.zeros((size, size), np.int32),
                 magnification=float(rng.uniform(0.85, 1.15)))
    glands = _draw_glands(tile, int(np.sum((types == 3) | (types == 4))), rng)
    clusters = rng.uniform(0, size, size=(int(rng.integers(1, 4)), 2))
    for kind in _drawing_order(types, rng):
        for _ in range(25):  # placement attempts before the nucleus is given up
            centre, angle = _place(kind, tile.size, glands, clusters, fibre_angle, rng)
            if _draw_nucleus(tile, kind, centre, angle, rng):
                break
    return _to_rgb(tile, rng), _annotations(tile)


# ---------------------------------------------------------------------------------------------
# Tissue


def _smooth_noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return noise / (noise.std() + 1e-8)


def _stroma(size: int, fibre_angle: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Hematoxylin and eosin fields of the connective tissue: wavy fibres, white spaces."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    along = cols * math.cos(fibre_angle) + rows * math.sin(fibre_angle)
    across = -cols * math.sin(fibre_angle) + rows * math.cos(fibre_angle)
    wave = 3.0 * _smooth_noise(size, 10, rng)
    fibres = 0.5 + 0.5 * np.sin(2 * math.pi * (across + wave) / rng.uniform(5, 8))
    fibres = fibres ** 3 * (0.6 + 0.4 * np.cos(along / 17.0 + 2 * _smooth_noise(size, 6, rng)))
    eosin = 0.15 + 0.13 * fibres + 0.03 * _smooth_noise(size, 3, rng)
    spaces = _smooth_noise(size, 9, rng) > rng.uniform(1.6, 2.2)  # fat, tears
    eosin = np.where(spaces, 0.03, eosin)
    hematoxylin = 0.05 + 0.015 * _smooth_noise(size, 2, rng)
    return np.clip(hematoxylin, 0, None), np.clip(eosin, 0, None)


def _draw_glands(tile: _Tile, epithelial: int, rng: np.random.Generator) -> list[tuple]:
    """Glands for the epithelial nuclei: white lumen, ring of purple cytoplasm."""
    glands = []
    rows, cols = np.mgrid[0:tile.size, 0:tile.size]
    for _ in range(math.ceil(epithelial / 14)):
        radius = rng.uniform(16, 30)
        centre = rng.uniform(radius, tile.size - radius, size=2)
        distance = np.hypot(cols - centre[0], rows - centre[1])
        lumen = distance < radius - 7
        cytoplasm = (distance >= radius - 7) & (distance < radius + 5)
        tile.eosin[lumen] = 0.04
        tile.hematoxylin[lumen] = 0.02
        tile.eosin[cytoplasm] = 0.24 + 0.03 * rng.standard_normal(int(cytoplasm.sum()))
        tile.hematoxylin[cytoplasm] = 0.16
        glands.append((centre, radius))
    return glands


def _drawing_order(types: np.ndarray, rng: np.random.Generator) -> list[int]:
    return [int(t) for t in types[rng.permutation(len(types))]]


def _place(kind: int, size: int, glands: list[tuple], clusters: np.ndarray, fibre_angle: float,
           rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Where a nucleus of `kind` goes and the direction of its long axis."""
    if kind in (3, 4) and glands:
        centre, radius = glands[int(rng.integers(len(glands)))]
        theta = rng.uniform(0, 2 * math.pi)
        position = centre + (radius + rng.normal(0, 1.2)) * np.array([math.cos(theta),
                                                                      math.sin(theta)])
        return position, theta  # long axis radial, across the gland wall
    if kind == 2:
        position = clusters[int(rng.integers(len(clusters)))] + rng.normal(0, 14, size=2)
        return position % size, float(rng.uniform(0, math.pi))
    if kind in (5, 6):
        return rng.uniform(0, size, size=2), fibre_angle + rng.normal(0, 0.2)
    return rng.uniform(0, size, size=2), float(rng.uniform(0, math.pi))


# ---------------------------------------------------------------------------------------------
# Nuclei


def _shape_radius(look: _Look, u: np.ndarray, v: np.ndarray, a: float, b: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Normalised radius: < 1 inside the nucleus outline."""
    if look.shape == "spindle":
        taper = np.clip(1.0 - (u / a) ** 2, 0.05, None)
        return np.sqrt((u / a) ** 2 + (v / (b * taper)) ** 2)
    if look.shape == "cigar":
        return ((u / a) ** 4 + (v / b) ** 4) ** 0.25
    if look.shape == "curved":
        v = v - rng.uniform(0.25, 0.5) * u ** 2 / a
        return np.sqrt((u / a) ** 2 + (v / b) ** 2)
    radius = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    if look.irregular:
        theta = np.arctan2(v / b, u / a)
        wobble = sum(rng.normal(0, look.irregular / k) * np.cos(k * theta + rng.uniform(0, 6.3))
                     for k in (2, 3, 5))
        radius = radius / (1.0 + wobble)
    return radius


def _draw_nucleus(tile: _Tile, kind: int, centre: np.ndarray, angle: float,
                  rng: np.random.Generator) -> bool:
    """Paints one nucleus (and its context) if its pixels are free; False when they are not."""
    look = _LOOKS[kind]
    a = rng.uniform(*look.major) * tile.magnification
    b = rng.uniform(*look.minor) * tile.magnification
    reach = int(math.ceil(max(a, b) * 2.6)) + 2
    x0, y0 = int(round(centre[0])), int(round(centre[1]))
    top, bottom = max(0, y0 - reach), min(tile.size, y0 + reach + 1)
    left, right = max(0, x0 - reach), min(tile.size, x0 + reach + 1)
    if bottom - top < 3 or right - left < 3:
        return False
    rows, cols = np.mgrid[top:bottom, left:right].astype(np.float64)
    dx, dy = cols - centre[0], rows - centre[1]
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    radius = _shape_radius(look, u, v, a, b, rng)
    alpha = np.clip((1.0 - radius) * b * 1.5 + 0.5, 0.0, 1.0)
    mask = alpha > 0.5
    window = (slice(top, bottom), slice(left, right))
    if mask.sum() < 4 or tile.inst_map[window][ndimage.binary_dilation(mask)].any():
        return False
    free = tile.inst_map[window] == 0
    _draw_context(tile, kind, window, u, v, a, b, free, rng)
    stain = rng.uniform(*look.hematoxylin) * (1.0 + 0.12 * rng.standard_normal(radius.shape))
    if look.shape == "vesicular":  # pale centre, dark rim, one or two nucleoli
        stain = stain * (0.4 + 0.6 * np.clip(radius, 0, 1) ** 3)
        for _ in range(int(rng.integers(1, 3))):
            spot = rng.normal(0, 0.3, size=2) * (a, b)
            stain = stain + 0.9 * np.exp(-((u - spot[0]) ** 2 + (v - spot[1]) ** 2) / 2.0)
    else:
        stain = stain * (0.85 + 0.15 * np.clip(radius, 0, 1))
    h, e = tile.hematoxylin[window], tile.eosin[window]
    h[:] = h * (1 - alpha) + stain * alpha
    e[:] = e * (1 - 0.7 * alpha)
    instance = len(tile.types) + 1
    tile.inst_map[window][mask] = instance
    tile.type_map[window][mask] = kind
    tile.types.append(kind)
    return True


def _draw_context(tile: _Tile, kind: int, window: tuple[slice, slice], u: np.ndarray,
                  v: np.ndarray, a: float, b: float, free: np.ndarray,
                  rng: np.random.Generator) -> None:
    """What surrounds a nucleus: muscle cytoplasm, a vessel lumen beside endothelium."""
    h, e = tile.hematoxylin[window], tile.eosin[window]
    if kind in (6, 7) and rng.uniform() < 0.3:
        return  # the cytoplasm or lumen is out of the section's plane
    if kind == 6:  # dense pink cytoplasm of a smooth-muscle cell along its nucleus
        cell = ((u / (2.3 * a)) ** 2 + (v / (2.8 * b)) ** 2) < 1.0
        e[cell & free] = 0.42 + 0.03 * rng.standard_normal(int((cell & free).sum()))
    elif kind == 7:  # a small vessel whose wall the nucleus hugs, on its concave side
        lumen_radius = rng.uniform(3.0, 5.5)
        lumen = (u ** 2 + (v - b - lumen_radius - 0.5) ** 2) < lumen_radius ** 2
        e[lumen & free] = 0.05
        h[lumen & free] = 0.02
        blood = (u ** 2 + (v - b - lumen_radius - 0.5) ** 2) < (0.45 * lumen_radius) ** 2
        if rng.uniform() < 0.6:
            e[blood & free] = 0.95  # a red blood cell
    elif kind == 2:  # a thin rim of cytoplasm
        rim = ((u / (a + 1.2)) ** 2 + (v / (b + 1.2)) ** 2) < 1.0
        h[rim & free] = np.maximum(h[rim & free], 0.12)


def _to_rgb(tile: _Tile, rng: np.random.Generator) -> np.ndarray:
    """Mixes the stains with this tile's stain vectors and strength; adds blur and noise."""
    h_vector = H_STAIN + rng.normal(0, 0.06, size=3)
    e_vector = E_STAIN + rng.normal(0, 0.06, size=3)
    h_vector, e_vector = (np.abs(v) / np.linalg.norm(v) for v in (h_vector, e_vector))
    h = tile.hematoxylin * rng.uniform(0.7, 1.3)
    e = tile.eosin * rng.uniform(0.6, 1.4)
    density = h[..., None] * h_vector + e[..., None] * e_vector
    rgb = 250.0 * 10.0 ** (-density)
    focus = rng.uniform(0.4, 1.1)  # scanners and focus differ between tiles
    rgb = ndimage.gaussian_filter(rgb, sigma=(focus, focus, 0))
    rgb += rng.normal(0, rng.uniform(2.0, 5.0), size=rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _annotations(tile: _Tile) -> dict[str, np.ndarray]:
    """The CoNSeP .mat keys; centroids are the mean (x, y) of each instance's pixels."""
    count = len(tile.types)
    rows, cols = np.nonzero(tile.inst_map)
    instances = tile.inst_map[rows, cols]
    pixels = np.bincount(instances, minlength=count + 1)[1:]
    x = np.bincount(instances, weights=cols, minlength=count + 1)[1:] / pixels
    y = np.bincount(instances, weights=rows, minlength=count + 1)[1:] / pixels
    return {"inst_map": tile.inst_map.astype(np.int32),
            "type_map": tile.type_map.astype(np.int32),
            "inst_type": np.asarray(tile.types, np.float64).reshape(-1, 1),
            "inst_centroid": np.stack([x, y], axis=1).astype(np.float64)}


def _readme(names: list[tuple[str, str]], counts: np.ndarray, tile_size: int, seed: int) -> str:
    train = sum(folder == "Train" for folder, _ in names)
    lines = [
        "SYNTHETIC DEMO DATA written by jaxtl.data.consep.demo; not CoNSeP.",
        f"seed {seed}, {len(names)} tiles of {tile_size}x{tile_size} px "
        f"({train} Train, {len(names) - train} Test), in the layout of the CoNSeP download.",
        "Nuclei per type: " + ", ".join(f"{t} {int(counts[t])}" for t in range(1, 8)),
    ]
    return "\n".join(lines) + "\n"
