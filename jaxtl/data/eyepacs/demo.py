"""Synthetic demo data in the on-disk layout of Kaggle EyePACS (Diabetic Retinopathy Detection).

`write_demo_dataset(root, ...)` writes what the real dataset holds, so the same reader serves both:

    root/trainLabels.csv     header `image,level`, rows `10_left,0`, sorted by patient then eye
    root/train/10_left.jpeg  RGB colour fundus photograph
    root/DEMO_README.txt     says the data are synthetic (seed, counts per grade)
    root/DEMO_REGIONS.csv    the demo sidecar: the box of every lesion drawn (jaxtl/data/regions.py;
                             not part of the real layout, the reader ignores it)

The images are drawn fundus photographs: a near-black background around a circular orange-red
retina, a bright yellowish optic disc with dark-red vessels branching from it, a darker macula,
camera vignetting and per-image variation in size, aspect, position, brightness and colour.
The grade is carried by lesions whose number, size and kind grow with it (see `_LESIONS`), all
gathered around one affected spot per image (within 0.65 retina radii of the centre, away from
the optic disc), so that they can be localised:

    0  no lesions
    1  4-8 microaneurysms (dark-red dots) within 0.3 retina radii of the spot
    2  as many microaneurysms, 4-8 dot-blot haemorrhages, 2-3 clusters of hard exudates (bright
       yellow), sometimes a cotton-wool spot, within 0.4 retina radii
    3  10-14 larger blot haemorrhages, 2-4 exudate clusters, 1-3 cotton-wool spots and the
       microaneurysms, within 0.5 retina radii
    4  as 3, plus 1-3 neovascular tufts (bright-red abnormal vessel loops, often with a pale
       fibrous veil: new vessels elsewhere) and sometimes a large preretinal haemorrhage

Lesion sizes are set relative to the retina radius so that they stay visible after the images are
downsampled to 80x80 px, the resolution of the demo run (a microaneurysm is 3 to 4 px across).
Gathering the lesions keeps a random map's pointing-game hit rate low (jaxtl.explain): real
severe retinopathy has haemorrhages in every quadrant, and a box around each would cover most
of a coarse map's cells.

Each lesion's box is the bounding box of the outline it is drawn from (a polygon, or a loop
line widened by its width), in pixels of the saved photograph (after the 180-degree inversion,
cut to the image); findings: `LESION_FINDINGS`. Exudates are boxed spot by spot.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from jaxtl.core.atomic import staged_folder
from jaxtl.data.demo_store import README_FILE, write_regions
from jaxtl.data.eyepacs.reader import IMAGE_DIR, LABELS_FILE
from jaxtl.data.regions import Box

EYES = ("left", "right")
NUM_GRADES = 5

# The real training set (35,126 images) is 73.5 / 7.0 / 15.1 / 2.5 / 2.0 % for grades 0..4. The
# demo keeps the order of that imbalance (grade 0 dominant, 2 next, 3 and 4 rare) but softens it,
# so a small model trained for a few epochs on ~1,500 images still sees enough of every grade.
GRADE_PROBS = (0.50, 0.12, 0.20, 0.10, 0.08)
# Probability that both eyes of a patient have the same grade; otherwise they differ by one.
SAME_GRADE_PROB = 0.7
# Like the real set, some images are inverted (rotated 180 degrees), as seen through a condenser
# lens, rather than in the anatomical view with a right eye's optic disc on the right.
INVERTED_PROB = 0.3
JPEG_QUALITY = 90
_SUPERSAMPLE = 2  # lesion and vessel masks are drawn at this multiple of the image size

FloatImage = np.ndarray  # (3, H, W) float32 in [0, 1]; channels first keeps numpy loops long
Point = tuple[float, float]
Lesion = tuple[str, Box]  # (finding, box in pixels of the photograph)
LESION_FINDINGS = ("microaneurysm", "haemorrhage", "preretinal_haemorrhage", "hard_exudate",
                   "cotton_wool_spot", "neovascularisation", "fibrous_veil")


class Photograph(NamedTuple):
    pixels: np.ndarray  # (H, W, 3) uint8
    lesions: list[Lesion]


@dataclasses.dataclass(frozen=True)
class _LesionCounts:
    """What is drawn for one grade: counts are inclusive (low, high) ranges, drawn uniformly.

    Sizes are radii as fractions of the retina radius: exudates 0.025..0.045 (in clusters of
    3..7), cotton-wool spots 0.06..0.09, neovascular tufts about 0.15. Every lesion of an image
    lies within `spread` retina radii of one affected spot (the focus), drawn within 0.65 retina
    radii of the centre, away from the optic disc.
    """

    microaneurysms: tuple[int, int] = (0, 0)
    microaneurysm_size: tuple[float, float] = (0.045, 0.06)  # radius, fraction of retina radius
    haemorrhages: tuple[int, int] = (0, 0)
    haemorrhage_size: tuple[float, float] = (0.05, 0.08)  # radius, as above
    exudate_clusters: tuple[int, int] = (0, 0)
    cotton_wool: tuple[int, int] = (0, 0)
    neovascular_tufts: tuple[int, int] = (0, 0)
    preretinal_prob: float = 0.0
    spread: float = 0.3  # fraction of the retina radius


_LESIONS: dict[int, _LesionCounts] = {
    0: _LesionCounts(),
    1: _LesionCounts(microaneurysms=(4, 8), spread=0.3),
    2: _LesionCounts(
        microaneurysms=(4, 8), haemorrhages=(4, 8), exudate_clusters=(2, 3), cotton_wool=(0, 1),
        spread=0.4,
    ),
    3: _LesionCounts(
        microaneurysms=(4, 8),
        haemorrhages=(10, 14),
        haemorrhage_size=(0.06, 0.10),
        exudate_clusters=(2, 4),
        cotton_wool=(1, 3),
        spread=0.5,
    ),
    4: _LesionCounts(
        microaneurysms=(4, 8),
        haemorrhages=(10, 14),
        haemorrhage_size=(0.06, 0.10),
        exudate_clusters=(2, 4),
        cotton_wool=(1, 3),
        neovascular_tufts=(1, 3),
        preretinal_prob=0.5,
        spread=0.5,
    ),
}


@dataclasses.dataclass(frozen=True)
class _Fundus:
    """Geometry of one photograph, in pixels of the output image."""

    height: int
    width: int
    center: Point
    radius: float  # of the retina disc
    optic_disc: Point
    optic_radius: float
    macula: Point
    temporal: float  # +1 when the macula lies right of the optic disc in the image, else -1


# ---------------------------------------------------------------------------------------------
# Public API


def write_demo_dataset(
    root: str | os.PathLike, *, num_patients: int, image_size: int, seed: int
) -> pathlib.Path:
    """Writes a synthetic EyePACS-layout dataset of `num_patients` patients (two eyes each).

    Returns the dataset root. The output is a pure function of the arguments. The data are written
    into a temporary sibling folder that is renamed to `root` at the end, so an interrupted write
    never leaves a partial dataset at `root`. Raises `FileExistsError` if `root` exists.
    """
    if num_patients < 1:
        raise ValueError(f"num_patients must be >= 1, got {num_patients}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    root = pathlib.Path(root).absolute()
    layout_seq, images_seq = np.random.SeedSequence(seed).spawn(2)
    rows = demo_labels(num_patients, np.random.default_rng(layout_seq))
    image_seqs = images_seq.spawn(len(rows))

    with staged_folder(root) as tmp:
        (tmp / IMAGE_DIR).mkdir()
        regions = []
        for (image_id, grade), image_seq in zip(rows, image_seqs):
            eye = image_id.rsplit("_", 1)[1]
            photo = render_fundus(grade, eye, image_size, np.random.default_rng(image_seq))
            _save_jpeg(photo.pixels, tmp / IMAGE_DIR / f"{image_id}.jpeg")
            regions += [(image_id, finding, box) for finding, box in photo.lesions]
        (tmp / LABELS_FILE).write_bytes(_labels_csv(rows))
        (tmp / README_FILE).write_text(_readme(rows, num_patients, image_size, seed))
        write_regions(tmp, regions)
    return root


def demo_labels(num_patients: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(image id, grade) rows in the order of the real `trainLabels.csv`."""
    # Real patient ids start at 10 and have gaps (10, 13, 15, 16, ...).
    gaps = rng.integers(1, 5, size=num_patients)
    patients = 10 + np.cumsum(gaps) - gaps[0]
    pair_probs = eye_pair_probs(GRADE_PROBS, SAME_GRADE_PROB)
    pairs = rng.choice(pair_probs.size, size=num_patients, p=pair_probs.ravel())
    rows = []
    for patient, pair in zip(patients.tolist(), pairs.tolist()):
        left, right = divmod(pair, NUM_GRADES)
        rows.append((f"{patient}_left", left))
        rows.append((f"{patient}_right", right))
    return rows


def eye_pair_probs(grade_probs: Sequence[float], same_prob: float) -> np.ndarray:
    """Joint (left, right) grade distribution: each eye has marginal `grade_probs`, both eyes
    share a grade with probability `same_prob`, and otherwise their grades are neighbours.

    The matrix is symmetric with off-diagonal mass proportional to min(p_a, p_b) for neighbouring
    grades (a reversible one-step move), which keeps both marginals exactly at `grade_probs`.
    """
    p = np.asarray(grade_probs, dtype=np.float64)
    neighbour = np.minimum(p[:-1], p[1:])
    scale = (1.0 - same_prob) / (2.0 * neighbour.sum())
    joint = np.zeros((p.size, p.size))
    idx = np.arange(p.size - 1)
    joint[idx, idx + 1] = joint[idx + 1, idx] = scale * neighbour
    joint[np.diag_indices(p.size)] = p - joint.sum(axis=1)
    if (joint < 0).any():
        raise ValueError(f"same_prob={same_prob} is too low for grade_probs={tuple(p)}")
    return joint


def render_fundus(grade: int, eye: str, image_size: int, rng: np.random.Generator) -> Photograph:
    """One synthetic fundus photograph of the given grade, (H, W, 3) uint8, and the boxes of
    its lesions.

    H and W vary independently between 0.85x and 1.15x `image_size`.
    """
    if grade not in _LESIONS:
        raise ValueError(f"grade must be in 0..{NUM_GRADES - 1}, got {grade}")
    if eye not in EYES:
        raise ValueError(f"eye must be one of {EYES}, got {eye!r}")
    fundus = _sample_geometry(eye, image_size, rng)
    image, tint = _background(fundus, rng)
    _draw_vessels(image, fundus, rng)
    lesions = _draw_lesions(image, fundus, _LESIONS[grade], tint, rng)
    image = _crop_to_retina(image, fundus, rng)
    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    if rng.random() < INVERTED_PROB:
        pixels = pixels[::-1, ::-1]
        lesions = [(finding, Box(fundus.width - box.x - box.width,
                                 fundus.height - box.y - box.height, box.width, box.height))
                   for finding, box in lesions]
    inside = [(finding, box.clipped(fundus.width, fundus.height)) for finding, box in lesions]
    return Photograph(np.ascontiguousarray(pixels),
                      [(finding, box) for finding, box in inside if box is not None])


# ---------------------------------------------------------------------------------------------
# Files


def _save_jpeg(pixels: np.ndarray, path: pathlib.Path) -> None:
    # Fixed encoder settings: the same pixels always give the same bytes.
    Image.fromarray(pixels).save(
        path, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0", optimize=False
    )


def _labels_csv(rows: Sequence[tuple[str, int]]) -> bytes:
    lines = ["image,level"] + [f"{image_id},{grade}" for image_id, grade in rows]
    return ("\n".join(lines) + "\n").encode("ascii")


def _readme(rows: Sequence[tuple[str, int]], num_patients: int, image_size: int, seed: int) -> str:
    counts = np.bincount([grade for _, grade in rows], minlength=NUM_GRADES)
    per_grade = "\n".join(f"  grade {g}: {n} images" for g, n in enumerate(counts.tolist()))
    probs = ", ".join(f"{g}: {p:.2f}" for g, p in enumerate(GRADE_PROBS))
    return (
        "SYNTHETIC DEMO DATA generated by jaxtl (jaxtl.data.eyepacs.demo).\n"
        "These are drawn images in the layout of Kaggle EyePACS (Diabetic Retinopathy Detection),\n"
        "for trying the training pipeline without the real dataset. They are not photographs\n"
        "of any eye and must not be used to judge a model.\n\n"
        f"seed: {seed}\n"
        f"patients: {num_patients}\n"
        f"images: {len(rows)}\n"
        f"image size: about {image_size} px (each side 0.85x..1.15x)\n"
        f"grade probabilities per eye: {probs}\n"
        f"both eyes share a grade with probability {SAME_GRADE_PROB}\n"
        f"images per grade:\n{per_grade}\n"
    )


# ---------------------------------------------------------------------------------------------
# Geometry and background


def _sample_geometry(eye: str, image_size: int, rng: np.random.Generator) -> _Fundus:
    height, width = (np.round(image_size * rng.uniform(0.85, 1.15, size=2))).astype(int).tolist()
    # Like the real camera the retina sometimes overflows the frame at the top and bottom.
    radius = 0.5 * min(height, width) * rng.uniform(0.84, 1.04)
    jitter = 0.04 * min(height, width)
    cx = width / 2 + rng.uniform(-jitter, jitter)
    cy = height / 2 + rng.uniform(-jitter, jitter)
    # Seen from the camera the optic disc of a right eye lies right of the macula.
    temporal = -1.0 if eye == "right" else 1.0
    angle = rng.normal(0.0, 0.12)
    dist = radius * rng.uniform(0.30, 0.40)
    optic = (cx - temporal * dist * math.cos(angle), cy + dist * math.sin(angle))
    macula_dist = radius * rng.uniform(0.05, 0.15)
    macula = (cx + temporal * macula_dist, cy + rng.normal(0.0, 0.03) * radius)
    return _Fundus(
        height=height,
        width=width,
        center=(cx, cy),
        radius=radius,
        optic_disc=optic,
        optic_radius=radius * rng.uniform(0.10, 0.14),
        macula=macula,
        temporal=temporal,
    )


def _offsets(fundus: _Fundus, point: Point) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel centre relative to `point`, as broadcastable float32 arrays."""
    xs = np.arange(fundus.width, dtype=np.float32) + np.float32(0.5 - point[0])
    ys = np.arange(fundus.height, dtype=np.float32) + np.float32(0.5 - point[1])
    return xs[None, :], ys[:, None]


def _distance(fundus: _Fundus, point: Point) -> np.ndarray:
    return np.hypot(*_offsets(fundus, point))


def _smooth_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean low-frequency noise: a `cells` x `cells` grid upsampled bicubically."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    up = Image.fromarray(grid).resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def _background(fundus: _Fundus, rng: np.random.Generator) -> tuple[FloatImage, np.ndarray]:
    """Retina without vessels and lesions; also returns the retina tint (RGB)."""
    shape = (fundus.height, fundus.width)
    brightness = rng.uniform(0.65, 1.1)
    tint = np.array([0.80, 0.36, 0.14]) * np.exp(rng.normal(0.0, [0.05, 0.12, 0.2]))
    tint = (tint * brightness).astype(np.float32)

    r = _distance(fundus, fundus.center) / fundus.radius
    shade = 1.0 - rng.uniform(0.25, 0.55) * r**2  # camera vignetting
    direction = rng.uniform(0.0, 2.0 * math.pi)
    dx, dy = _offsets(fundus, fundus.center)
    gradient = (math.cos(direction) * dx + math.sin(direction) * dy) / fundus.radius
    shade = shade * (1.0 + rng.uniform(0.0, 0.15) * gradient)
    shade = shade * (1.0 + 0.07 * _smooth_noise(shape, 7, rng))

    macula = _distance(fundus, fundus.macula) / (fundus.radius * rng.uniform(0.14, 0.2))
    shade = shade * (1.0 - rng.uniform(0.25, 0.4) * np.exp(-(macula**2)))
    image = shade * _channels(tint)

    optic = _distance(fundus, fundus.optic_disc) / fundus.optic_radius
    rim = np.clip((1.15 - optic) / 0.35, 0.0, 1.0)
    halo = 0.35 * np.exp(-((optic / 1.6) ** 2))
    cup = np.clip((0.55 - optic) / 0.3, 0.0, 1.0)
    disc_colour = np.array([1.0, 0.82, 0.5], np.float32) * min(1.0, brightness * 1.1)
    cup_colour = np.array([1.0, 0.95, 0.78], np.float32)
    image = _blend(image, disc_colour, np.maximum(rim * 0.9, halo))
    image = _blend(image, cup_colour, cup * 0.8)
    return image, tint


def _blend(image: FloatImage, colour: Sequence[float], alpha: np.ndarray) -> FloatImage:
    return image * (1.0 - alpha) + _channels(colour) * alpha


def _channels(colour: Sequence[float]) -> np.ndarray:
    """An RGB triple shaped (3, 1, 1) to broadcast over a `FloatImage`."""
    return np.asarray(colour, np.float32).reshape(3, 1, 1)


def _crop_to_retina(image: FloatImage, fundus: _Fundus, rng: np.random.Generator) -> FloatImage:
    """Near-black outside the retina disc, with a soft edge and sensor noise."""
    r = _distance(fundus, fundus.center)
    inside = np.clip((fundus.radius - r) / max(1.0, 0.015 * fundus.radius), 0.0, 1.0)
    black = np.float32(rng.uniform(0.0, 0.03))
    image = image * inside + black * (1.0 - inside)
    return image + 0.012 * rng.standard_normal(image.shape, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Vessels and lesions, drawn as supersampled masks with ImageDraw and blended with numpy


class _Mask:
    """A greyscale mask drawn at `_SUPERSAMPLE` times the image size, in image coordinates.

    A shape drawn with a `finding` name adds (finding, its box) to `lesions`."""

    def __init__(self, fundus: _Fundus, lesions: list[Lesion] | None = None) -> None:
        self.size = (fundus.width * _SUPERSAMPLE, fundus.height * _SUPERSAMPLE)
        self.image = Image.new("L", self.size, 0)
        self.draw = ImageDraw.Draw(self.image)
        self.empty = True
        self.lesions = lesions

    def _record(self, finding: str | None, points: Sequence[Point], margin: float = 0.0) -> None:
        if finding is not None and self.lesions is not None:
            self.lesions.append((finding, Box.around([x for x, _ in points],
                                                     [y for _, y in points], margin)))

    def polygon(self, points: Sequence[Point], value: int = 255,
                finding: str | None = None) -> None:
        self.empty = False
        self.draw.polygon([(x * _SUPERSAMPLE, y * _SUPERSAMPLE) for x, y in points], fill=value)
        self._record(finding, points)

    def line(self, points: Sequence[Point], width: float, value: int = 255,
             finding: str | None = None) -> None:
        self.empty = False
        scaled = [(x * _SUPERSAMPLE, y * _SUPERSAMPLE) for x, y in points]
        self.draw.line(scaled, fill=value, width=max(1, round(width * _SUPERSAMPLE)), joint="curve")
        self._record(finding, points, width / 2)

    def alpha(self, blur: float = 0.0) -> np.ndarray:
        """The mask at image size in [0, 1], optionally blurred by `blur` image pixels."""
        mask = self.image.reduce(_SUPERSAMPLE)  # box filter: antialiased edges
        if blur > 0:
            mask = mask.filter(ImageFilter.GaussianBlur(blur))
        return np.asarray(mask, dtype=np.float32) / 255.0

    def paint(
        self, image: FloatImage, colour: Sequence[float], opacity: float = 1.0, blur: float = 0.0
    ) -> None:
        """Blends `colour` into `image` in place where the mask is set."""
        if not self.empty:
            image[:] = _blend(image, colour, self.alpha(blur) * opacity)

    def darken(self, image: FloatImage, amount: Sequence[float], blur: float = 0.0) -> None:
        """Multiplies each channel of `image` in place by 1 - mask * amount."""
        if not self.empty:
            image *= 1.0 - self.alpha(blur) * _channels(amount)


def _draw_vessels(image: FloatImage, fundus: _Fundus, rng: np.random.Generator) -> None:
    """Darkens `image` in place along a vessel tree rooted at the optic disc."""
    mask = _Mask(fundus)
    r = fundus.radius
    # (start angle, target angle) in a frame where 0 points temporal and +pi/2 superior: the
    # temporal arcades arch around the macula, the nasal trunks spread outwards.
    pi = math.pi
    trunks = [(1.1, -0.25), (-1.1, 0.25), (pi - 0.6, pi - 1.0), (-pi + 0.6, -pi + 1.0)]
    trunks += [(float(a), float(a)) for a in rng.uniform(-pi, pi, size=rng.integers(0, 3))]
    for start, target in trunks:
        value = int(rng.integers(150, 256))  # veins darker than arteries
        width = r * rng.uniform(0.028, 0.04)
        angle = start + rng.normal(0, 0.1)
        _grow_vessel(mask, fundus, fundus.optic_disc, angle, target, width, 22, value, 0, rng)
    mask.darken(image, (0.45, 0.62, 0.6))  # red falls less than green and blue


def _grow_vessel(
    mask: _Mask,
    fundus: _Fundus,
    start: Point,
    angle: float,
    target: float,
    width: float,
    steps: int,
    value: int,
    depth: int,
    rng: np.random.Generator,
) -> None:
    """Draws one vessel as a tapering random walk and recursively its side branches."""
    step = fundus.radius * 0.07
    min_width = fundus.radius * 0.008
    # Drawn up front: two Generator calls per vessel instead of several per step.
    wobble = (0.12 * rng.standard_normal(steps)).tolist()
    fork_draw, side_draw, turn_draw = rng.random((3, steps))
    branches = (fork_draw < 0.18).tolist() if depth < 2 else [False] * steps
    turns = (np.where(side_draw < 0.5, -1.0, 1.0) * (0.4 + 0.5 * turn_draw)).tolist()
    points, widths, forks = [start], [], []
    x, y = start
    for i in range(steps):
        angle += 0.15 * (target - angle) + wobble[i]
        x += step * math.cos(angle) * fundus.temporal
        y -= step * math.sin(angle)
        if math.hypot(x - fundus.center[0], y - fundus.center[1]) > fundus.radius:
            break
        points.append((x, y))
        widths.append(width)
        width = max(width * 0.95, min_width)
        if branches[i] and steps - i > 4:  # a fork needs a few steps left to be visible
            forks.append(((x, y), angle + turns[i], width * 0.65, int((steps - i - 1) * 0.6)))
    _draw_tapered(mask, points, widths, value)
    for fork, side, fork_width, remaining in forks:
        _grow_vessel(mask, fundus, fork, side, side, fork_width, remaining, value, depth + 1, rng)


def _draw_tapered(
    mask: _Mask, points: Sequence[Point], widths: Sequence[float], value: int
) -> None:
    """Draws segment i of the polyline `points` with widths[i]; one call per run of equal width."""
    pixels = [max(1, round(w * _SUPERSAMPLE)) for w in widths]
    first = 0
    for i in range(1, len(pixels) + 1):
        if i == len(pixels) or pixels[i] != pixels[first]:
            mask.line(points[first : i + 1], pixels[first] / _SUPERSAMPLE, value)
            first = i


def _random_spot(fundus: _Fundus, rng: np.random.Generator, max_radius: float = 0.85) -> Point:
    """A uniformly random point on the retina, away from the optic disc."""
    while True:
        rho = fundus.radius * max_radius * math.sqrt(rng.random())
        theta = rng.uniform(0.0, 2.0 * math.pi)
        point = (
            fundus.center[0] + rho * math.cos(theta),
            fundus.center[1] + rho * math.sin(theta),
        )
        if math.dist(point, fundus.optic_disc) > 1.4 * fundus.optic_radius:
            return point


def _near(fundus: _Fundus, focus: Point, spread: float, rng: np.random.Generator) -> Point:
    """A uniformly random point within `spread` retina radii of `focus`, on the retina and
    away from the optic disc (`focus` itself when a few tries find none)."""
    for _ in range(20):
        rho = fundus.radius * spread * math.sqrt(rng.random())
        theta = rng.uniform(0.0, 2.0 * math.pi)
        point = (focus[0] + rho * math.cos(theta), focus[1] + rho * math.sin(theta))
        if (math.dist(point, fundus.center) < 0.88 * fundus.radius
                and math.dist(point, fundus.optic_disc) > 1.4 * fundus.optic_radius):
            return point
    return focus


_BLOB_ANGLES = np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)
_BLOB_COS, _BLOB_SIN = np.cos(_BLOB_ANGLES), np.sin(_BLOB_ANGLES)
_HARMONICS = np.arange(2, 5)[:, None]


def _blob(
    center: Point,
    radius: float,
    rng: np.random.Generator,
    roughness: float = 0.25,
    aspect: float = 1.0,
) -> list[Point]:
    """A smooth irregular polygon around `center`, stretched by `aspect` along a random axis."""
    # A few low harmonics give lumpy but smooth outlines, like real blots.
    draws = rng.random(7)
    amplitude = roughness * draws[:3, None] / _HARMONICS
    phase = 2.0 * math.pi * draws[3:6, None]
    radii = radius * (1.0 + (amplitude * np.cos(_HARMONICS * _BLOB_ANGLES + phase)).sum(axis=0))
    turn = math.pi * draws[6]
    u, v = radii * _BLOB_COS * aspect, radii * _BLOB_SIN
    xs = center[0] + u * math.cos(turn) - v * math.sin(turn)
    ys = center[1] + u * math.sin(turn) + v * math.cos(turn)
    return list(zip(xs.tolist(), ys.tolist()))


def _count(bounds: tuple[int, int], rng: np.random.Generator) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _draw_lesions(
    image: FloatImage,
    fundus: _Fundus,
    lesions: _LesionCounts,
    tint: np.ndarray,
    rng: np.random.Generator,
) -> list[Lesion]:
    """Blends the lesions of one grade into `image` in place; returns their boxes."""
    found: list[Lesion] = []
    red, yellow, pale, neo = (_Mask(fundus, found) for _ in range(4))
    focus = _random_spot(fundus, rng, 0.65)

    def spot() -> Point:
        return _near(fundus, focus, lesions.spread, rng)

    _add_haemorrhages(red, fundus, lesions, spot, rng)
    _add_exudates(yellow, fundus, lesions, spot, rng)
    for _ in range(_count(lesions.cotton_wool, rng)):
        radius = fundus.radius * rng.uniform(0.06, 0.09)
        pale.polygon(_blob(spot(), radius, rng, 0.3, 1.5), 200, "cotton_wool_spot")
    _add_new_vessels(neo, pale, fundus, lesions, spot, rng)

    pale.paint(image, (0.88, 0.82, 0.72), blur=0.04 * fundus.radius)
    red.darken(image, (0.65, 0.85, 0.8), blur=0.5)
    exudate = np.array([1.0, 0.9, 0.4]) * min(1.0, 0.6 + float(tint[0]))
    yellow.paint(image, exudate, opacity=0.95)
    neo.paint(image, (0.95, 0.12, 0.12), opacity=0.9)
    return found


def _add_haemorrhages(
    mask: _Mask, fundus: _Fundus, lesions: _LesionCounts, spot: Callable[[], Point],
    rng: np.random.Generator,
) -> None:
    """Microaneurysms, dot-blot haemorrhages and the occasional preretinal haemorrhage."""
    r = fundus.radius
    lo, hi = lesions.microaneurysm_size
    for _ in range(_count(lesions.microaneurysms, rng)):
        mask.polygon(_blob(spot(), r * rng.uniform(lo, hi), rng, 0.2), finding="microaneurysm")
    lo, hi = lesions.haemorrhage_size
    for _ in range(_count(lesions.haemorrhages, rng)):
        aspect = rng.uniform(1.0, 1.8)  # some are flame-shaped
        blot = _blob(spot(), r * rng.uniform(lo, hi), rng, 0.5, aspect)
        mask.polygon(blot, int(rng.integers(190, 256)), "haemorrhage")
    if rng.random() < lesions.preretinal_prob:
        blot = _blob(spot(), r * rng.uniform(0.14, 0.22), rng, 0.3, 1.4)
        mask.polygon(blot, 235, "preretinal_haemorrhage")


def _add_exudates(
    mask: _Mask, fundus: _Fundus, lesions: _LesionCounts, spot: Callable[[], Point],
    rng: np.random.Generator,
) -> None:
    """Hard exudates, in clusters of a few spots."""
    r = fundus.radius
    for _ in range(_count(lesions.exudate_clusters, rng)):
        cx, cy = spot()
        for _ in range(int(rng.integers(3, 8))):
            dot = (cx + rng.normal(0, 0.08 * r), cy + rng.normal(0, 0.08 * r))
            mask.polygon(_blob(dot, r * rng.uniform(0.025, 0.045), rng, 0.3),
                         finding="hard_exudate")


def _add_new_vessels(
    mask: _Mask, veil: _Mask, fundus: _Fundus, lesions: _LesionCounts,
    spot: Callable[[], Point], rng: np.random.Generator,
) -> None:
    """Neovascular tufts (new vessels elsewhere, NVE, in the affected area), most with a pale
    fibrous veil drawn into `veil`."""
    r = fundus.radius
    for _ in range(_count(lesions.neovascular_tufts, rng)):
        center = spot()
        _draw_tuft(mask, center, r, rng)
        if rng.random() < 0.6:
            veil.polygon(_blob(center, r * rng.uniform(0.12, 0.18), rng, 0.3, 1.3), 110,
                         "fibrous_veil")


def _draw_tuft(mask: _Mask, center: Point, r: float, rng: np.random.Generator) -> None:
    """A tangle of small wiggly loops: new vessels growing on the retina surface."""
    width = max(0.6, 0.02 * r)
    for _ in range(int(rng.integers(5, 9))):
        offset = (center[0] + rng.normal(0, 0.06 * r), center[1] + rng.normal(0, 0.06 * r))
        loop = _blob(offset, r * rng.uniform(0.03, 0.06), rng, 0.35, rng.uniform(1.0, 2.0))
        mask.line(loop + loop[:1], width, finding="neovascularisation")
