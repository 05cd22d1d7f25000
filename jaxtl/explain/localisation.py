"""Scoring a map against known regions: from the image file to the model's input, the pointing
game and the map's mass inside the regions.

Geometry: a box is mapped as the evaluation transform (`ImageTransform`, augment off) maps the
image. It is in pixels of the image as stored (jaxtl/data/regions.py); it is scaled by the
decoded size over the stored size on each axis (JPEG draft decoding may shrink the file while
decoding), shifted by the centred square crop of the decoded image (`ImageTransform.crop_box`)
and scaled by data.resolution over the crop's side, then cut to the input. All coordinates are
pixel edges as in Pillow: input pixel (i, j) covers [j, j + 1) x [i, i + 1). A decoder that
moves the image in other ways (EyePACS's Graham preprocessing rescales the eye and pads it onto
a canvas) cannot be followed: such a run is explained but its regions are not scored.

Map alignment: a map of h x w cells covers the input evenly, cell (i, j) the input pixels
[i R / h, (i + 1) R / h) x [j R / w, (j + 1) R / w) (a stage at stride s of an R = s h input
has each cell centred on the pixels it was computed from); it is resized to R x R with Pillow's
bilinear filter, which keeps that pixel-edge convention (`to_input_size`).

Pointing game (Zhang et al. 2018): the map points at the centre of its maximal cell (the first
in row-major order on ties), in input pixels: ((j + 0.5) R / w, (i + 0.5) R / h) for cell (i, j)
of an h x w map (an input-size map's cells are its pixels). A hit when that point lies inside a
box or within `tolerance` input pixels of one (the Euclidean distance to the box). The cell,
not the maximum of the resized map, because bilinear resizing holds an edge cell's value flat
out to the input's border, where a first-maximum rule would put the point of every edge cell
(8 of a 3 x 3 map's 9) on the border, away from what the cell saw. The tolerance is Zhang et
al.'s 15 px at 224 px input, scaled to the input: 15/224 of its side (`DEFAULT_TOLERANCE`). A
flat map (zero everywhere, or a 1 x 1 map) points nowhere: a miss. The random map's hit rate
is the expected hit rate of a map of the same h x w cells with independent random values,
whose maximum falls on a uniformly random cell: the fraction of cells whose centre is a hit.
Mass inside: the fraction of the map's sum, at input size, on pixels whose centre is inside a
box; a uniform map's is the boxes' area fraction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxtl.data.records import Record
from jaxtl.data.regions import Box
from jaxtl.data.transforms import ImageTransform

DEFAULT_TOLERANCE = 15 / 224  # of the input side


def follows_geometry(transform: ImageTransform) -> bool:
    """Whether boxes can be mapped through the transform's decoder (no preprocessing that
    moves the image, such as EyePACS's Graham preprocessing)."""
    return getattr(transform.decoder, "preprocess", None) is None


def stored_and_decoded_size(transform: ImageTransform,
                            record: Record) -> tuple[tuple[int, int], tuple[int, int]]:
    """((width, height) as stored, (width, height) as decoded for the transform)."""
    decoded = transform.decoder.decode(record.path, transform.resolution)
    if isinstance(decoded, Image.Image):
        with Image.open(record.path) as stored:
            return stored.size, decoded.size
    size = (decoded.shape[1], decoded.shape[0])
    return size, size  # arrays: the boxes are in pixels of the decoded array


def to_input(boxes: Sequence[Box], stored: tuple[int, int], decoded: tuple[int, int],
             transform: ImageTransform) -> list[Box]:
    """`boxes` in pixels of the model's input (see the module doc); boxes cut away by the
    crop are dropped."""
    scale_x, scale_y = decoded[0] / stored[0], decoded[1] / stored[1]
    left, top, right, _ = transform.crop_box(*decoded, None)
    zoom = transform.resolution / (right - left)
    mapped = (Box((box.x * scale_x - left) * zoom, (box.y * scale_y - top) * zoom,
                  box.width * scale_x * zoom, box.height * scale_y * zoom) for box in boxes)
    cut = (box.clipped(transform.resolution, transform.resolution) for box in mapped)
    return [box for box in cut if box is not None]


def to_input_size(cells: np.ndarray, resolution: int) -> np.ndarray:
    """A map (h, w) resized to (resolution, resolution) float32 (see the module doc)."""
    cells = np.asarray(cells, np.float32)
    if cells.shape == (resolution, resolution):
        return cells
    image = Image.fromarray(cells)  # mode "F"
    return np.asarray(image.resize((resolution, resolution), Image.Resampling.BILINEAR))


def cell_centres(cells: int, resolution: int) -> np.ndarray:
    """Where the centres of `cells` equal cells across the input lie, in input pixels."""
    return (np.arange(cells, dtype=np.float64) + 0.5) * resolution / cells


def distance_to_boxes(boxes: Sequence[Box], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)): the distance of each point (x, y) of the grid to the nearest box
    (0 inside)."""
    nearest = np.full((len(ys), len(xs)), np.inf)
    for box in boxes:
        dx = np.maximum(np.maximum(box.x - xs, xs - (box.x + box.width)), 0.0)
        dy = np.maximum(np.maximum(box.y - ys, ys - (box.y + box.height)), 0.0)
        nearest = np.minimum(nearest, np.hypot(dy[:, None], dx[None, :]))
    return nearest


def peak_point(cells: np.ndarray, resolution: int) -> tuple[float, float] | None:
    """(x, y) in input pixels where the map points (see the module doc); None when flat."""
    cells = np.asarray(cells)
    if float(np.max(cells)) == float(np.min(cells)):
        return None
    row, column = np.unravel_index(int(np.argmax(cells)), cells.shape)
    return (float(cell_centres(cells.shape[1], resolution)[column]),
            float(cell_centres(cells.shape[0], resolution)[row]))


@dataclasses.dataclass(frozen=True)
class MapScore:
    hit: bool  # the pointing game
    random_hit_rate: float  # a random map's expected hit
    mass_inside: float  # fraction of the map's sum inside the boxes
    area_inside: float  # a uniform map's: the boxes' area fraction
    peak: tuple[float, float] | None  # (x, y) in input pixels; None: a flat map


def score_map(cells: np.ndarray, boxes: Sequence[Box], tolerance: float,
              resolution: int) -> MapScore:
    """The pointing game and mass of a map of h x w cells against boxes in pixels of the
    (resolution x resolution) input; `tolerance` in input pixels."""
    cells = np.asarray(cells, np.float32)
    height, width = cells.shape
    hits = distance_to_boxes(boxes, cell_centres(width, resolution),
                             cell_centres(height, resolution)) <= tolerance
    peak = peak_point(cells, resolution)
    hit = peak is not None and float(distance_to_boxes(boxes, np.array([peak[0]]),
                                                        np.array([peak[1]]))[0, 0]) <= tolerance
    attribution = to_input_size(cells, resolution)
    pixels = cell_centres(resolution, resolution)
    inside = distance_to_boxes(boxes, pixels, pixels) == 0.0
    total = float(np.sum(attribution))
    return MapScore(hit=hit, random_hit_rate=float(hits.mean()),
                    mass_inside=float(attribution[inside].sum() / total) if total > 0 else 0.0,
                    area_inside=float(inside.mean()), peak=peak)


def summarise(scores: Sequence[MapScore]) -> dict[str, float | int | None]:
    """Means over images: hit rate against the random map's, mass against a uniform map's."""
    if not scores:
        return {"images": 0, "pointing_game": None, "random_map": None, "mass_inside": None,
                "uniform_map_mass": None}
    return {"images": len(scores), "hits": sum(s.hit for s in scores),
            "pointing_game": float(np.mean([s.hit for s in scores])),
            "random_map": float(np.mean([s.random_hit_rate for s in scores])),
            "mass_inside": float(np.mean([s.mass_inside for s in scores])),
            "uniform_map_mass": float(np.mean([s.area_inside for s in scores]))}
