"""Synthetic chest X-ray demo datasets in the real CheXpert and ChestX-ray14 layouts.

Each image is a grey frontal radiograph sketch (body, two dark lung fields with ribs, spine,
heart) varied per patient (position, size, exposure, noise). Findings are drawn per study with
the datasets' structure (children of Lung Opacity imply it; Cardiomegaly implies Enlarged
Cardiomediastinum) and drawn into the image where a radiologist would see them: opacity
blobs, perihilar haze (edema), dense lower-lobe patches (consolidation, pneumonia with
mottling), basal bands (atelectasis), nodules and masses, a basal meniscus (effusion), a dark
apex without lung markings (pneumothorax), a wide heart (cardiomegaly) or mediastinum, tubes
(support devices), a pleural line, a rib break. A finding the labeler marks uncertain is drawn
at half strength, so uncertainty is visible too. Some CheXpert images are lateral views (a
different sketch), which the default frontal filter removes.

CheXpert: `CheXpert-v1.0-small/{train,valid}.csv` and `train|valid/patientNNNNN/studyN/
viewN_frontal|lateral.jpg`; valid.csv holds 0/1 only (as the radiologist-labelled original).
ChestX-ray14: `Data_Entry_2017.csv` with the 2017 quirks (trailing comma, CRLF, ages `058Y`,
bracketed two-value headers), PNGs spread over `images_001/images/`..., and patient-disjoint
`train_val_list.txt` / `test_list.txt`.
The writer builds the dataset in a temporary folder and renames it into place, so readers never
see a half-written dataset.

Both demos also write the demo sidecar `DEMO_REGIONS.csv` (jaxtl/data/regions.py; not part of
the real layout, the readers ignore it): for every frontal image, the box of each drawn finding
(the pixels it changes by at least half its largest change; each opacity blob, each side of an
edema), under every label of the dataset that the finding makes (CHEXPERT_FROM_FINDINGS,
CXR14_FROM_FINDINGS), as ChestX-ray14's BBox_List_2017.csv names its boxes by finding label.
"""

from __future__ import annotations

import io
import pathlib
from typing import NamedTuple

import numpy as np
from PIL import Image

from jaxtl.core.atomic import staged_folder
from jaxtl.data.chest.labels import CHEXPERT_LABELS, CXR14_LABELS
from jaxtl.data.demo_store import write_regions
from jaxtl.data.regions import Box

RELEASE = "CheXpert-v1.0-small"
# Findings drawn into the images, with their prevalence per study.
PREVALENCE = {
    "opacity": 0.14, "nodule": 0.05, "mass": 0.04, "edema": 0.10, "consolidation": 0.08,
    "pneumonia": 0.05, "atelectasis": 0.12, "pneumothorax": 0.05, "effusion": 0.16,
    "pleural_other": 0.03, "fracture": 0.04, "devices": 0.25, "cardiomegaly": 0.13,
    "mediastinum": 0.05, "emphysema": 0.04, "fibrosis": 0.03, "hernia": 0.02,
}
CHEXPERT_FROM_FINDINGS = {
    "Enlarged Cardiomediastinum": ("mediastinum", "cardiomegaly"),
    "Cardiomegaly": ("cardiomegaly",),
    "Lung Opacity": ("opacity", "nodule", "mass", "edema", "consolidation", "pneumonia",
                     "atelectasis"),
    "Lung Lesion": ("nodule", "mass"), "Edema": ("edema",),
    "Consolidation": ("consolidation", "pneumonia"), "Pneumonia": ("pneumonia",),
    "Atelectasis": ("atelectasis",), "Pneumothorax": ("pneumothorax",),
    "Pleural Effusion": ("effusion",), "Pleural Other": ("pleural_other",),
    "Fracture": ("fracture",), "Support Devices": ("devices",),
}
CXR14_FROM_FINDINGS = {
    "Atelectasis": ("atelectasis",), "Cardiomegaly": ("cardiomegaly",),
    "Effusion": ("effusion",), "Infiltration": ("opacity",), "Mass": ("mass",),
    "Nodule": ("nodule",), "Pneumonia": ("pneumonia",), "Pneumothorax": ("pneumothorax",),
    "Consolidation": ("consolidation", "pneumonia"), "Edema": ("edema",),
    "Emphysema": ("emphysema",), "Fibrosis": ("fibrosis",),
    "Pleural_Thickening": ("pleural_other",), "Hernia": ("hernia",),
}
NOT_IN_CHEXPERT = ("emphysema", "fibrosis", "hernia")
NOT_IN_CXR14 = ("mediastinum", "fracture", "devices")


def draw_findings(rng: np.random.Generator, dataset: str) -> dict[str, float]:
    """Finding -> strength (1 present, 0.5 uncertain-looking); absent findings are left out."""
    excluded = NOT_IN_CHEXPERT if dataset == "chexpert" else NOT_IN_CXR14
    found = {}
    for name, prevalence in PREVALENCE.items():
        if name not in excluded and rng.uniform() < prevalence:
            found[name] = 1.0
    return found


class Anatomy:
    """One patient's body: positions and sizes that stay the same across their studies."""

    def __init__(self, rng: np.random.Generator):
        self.shift = rng.normal(0, 0.04, 2)
        self.scale = rng.uniform(0.9, 1.08)
        self.lung_width = rng.uniform(0.22, 0.28)
        self.lung_height = rng.uniform(0.48, 0.58)
        self.heart = rng.uniform(0.17, 0.21)
        self.exposure = rng.uniform(0.85, 1.15)


def _ellipse(x, y, cx, cy, rx, ry, soft=0.04):
    d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1.0 - d) / soft, 0.0, 1.0)


def _blob(x, y, cx, cy, sigma):
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))


class Radiograph(NamedTuple):
    pixels: np.ndarray  # (size, size) uint8
    regions: list[tuple[str, Box]]  # (drawn finding, box in pixels)


class _Film:
    """The image being drawn; a finding added with `add` keeps the box of its extent: the
    pixels where it changes the image by at least half its largest change."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.regions: list[tuple[str, Box]] = []

    def add(self, finding: str, term: np.ndarray) -> None:
        self.image = self.image + term
        magnitude = np.abs(term)
        rows, cols = np.nonzero(magnitude >= 0.5 * magnitude.max())
        if len(rows):
            self.regions.append((finding, Box(float(cols.min()), float(rows.min()),
                                              float(cols.max() + 1 - cols.min()),
                                              float(rows.max() + 1 - rows.min()))))


def render_frontal(size: int, anatomy: Anatomy, findings: dict[str, float],
                   rng: np.random.Generator) -> Radiograph:
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(grid, grid)
    x = (x - anatomy.shift[0]) / anatomy.scale
    y = (y - anatomy.shift[1]) / anatomy.scale
    f = findings.get
    image = 0.12 + 0.45 * _ellipse(x, y, 0.0, 0.1, 0.85, 0.98, soft=0.15)
    lung_w = anatomy.lung_width * (1.15 if f("emphysema") else 1.0)
    lungs = []
    for side in (-1, 1):
        lungs.append(_ellipse(x, y, side * 0.38, -0.05, lung_w, anatomy.lung_height, 0.2))
    lung = np.maximum(*lungs)
    ribs = 0.06 * (np.cos(y * 26 + np.abs(x) * 7) > 0.6)
    image -= lung * (0.33 + (0.08 * f("emphysema", 0)) - ribs)
    image += 0.28 * (np.abs(x) < 0.055) * (y > -0.9)  # spine
    film = _Film(image)
    heart_w = anatomy.heart * (1.0 + 0.6 * f("cardiomegaly", 0))
    heart = 0.3 * _ellipse(x, y, 0.07, 0.3, heart_w + 0.08, 0.2, 0.3)
    if f("cardiomegaly"):
        film.add("cardiomegaly", heart)
    else:
        film.image += heart
    if f("mediastinum"):
        film.add("mediastinum", 0.2 * f("mediastinum") * _ellipse(x, y, 0.0, -0.25, 0.17, 0.35,
                                                                   0.3))
    side = rng.choice([-1, 1])
    cx = side * 0.38
    if f("opacity"):
        for _ in range(rng.integers(1, 3)):
            film.add("opacity", 0.34 * f("opacity") * lung * _blob(
                x, y, rng.choice([-1, 1]) * 0.38 + rng.normal(0, 0.06), rng.uniform(-0.4, 0.3),
                rng.uniform(0.09, 0.15)))
    if f("edema"):
        for s in (-1, 1):
            film.add("edema", 0.28 * f("edema") * lung * _blob(x, y, s * 0.22, 0.0, 0.2))
    if f("consolidation") or f("pneumonia"):
        strength = max(f("consolidation", 0), f("pneumonia", 0))
        patch = lung * _blob(x, y, cx, rng.uniform(0.1, 0.35), 0.12)
        term = 0.45 * strength * patch
        if f("pneumonia"):
            term = term + 0.2 * patch * (rng.uniform(size=patch.shape) > 0.6)
        film.add("pneumonia" if f("pneumonia") else "consolidation", term)
    if f("atelectasis"):
        band = np.exp(-((y - rng.uniform(0.2, 0.35) - 0.15 * (x - cx)) / 0.025) ** 2)
        film.add("atelectasis", 0.4 * f("atelectasis") * band * lungs[0 if side < 0 else 1])
    for name, radius, amount in (("nodule", 0.035, 0.5), ("mass", 0.09, 0.5)):
        if f(name):
            film.add(name, amount * f(name) * lung * _ellipse(
                x, y, rng.choice([-1, 1]) * 0.38 + rng.normal(0, 0.06),
                rng.uniform(-0.35, 0.25), radius, radius, 0.5))
    if f("effusion"):
        level = 0.25 + 0.1 * rng.uniform()
        meniscus = (y > level + 0.25 * np.abs(x - cx) - 0.1).astype(float)
        film.add("effusion", 0.38 * f("effusion") * meniscus * lungs[0 if side < 0 else 1])
    if f("pneumothorax"):
        apex = lungs[0 if side > 0 else 1] * (y < -0.2)
        film.add("pneumothorax", -apex * (ribs + 0.12) * f("pneumothorax")
                 + 0.25 * f("pneumothorax") * np.exp(-((y + 0.2) / 0.015) ** 2) * apex.clip(0, 1))
    if f("pleural_other"):
        film.add("pleural_other", 0.35 * f("pleural_other")
                 * np.exp(-((np.abs(x) - 0.38 - lung_w) / 0.02) ** 2) * (np.abs(y) < 0.4))
    if f("fracture"):
        film.add("fracture", 0.5 * f("fracture") * _ellipse(x, y, side * 0.55,
                                                             rng.uniform(-0.5, 0.2), 0.04,
                                                             0.02, 0.5))
    if f("devices"):
        tube_x = rng.uniform(-0.1, 0.1)
        film.add("devices", 0.45 * (np.abs(x - tube_x) < 0.012) * (y < rng.uniform(0.0, 0.4)))
        film.add("devices", 0.4 * _ellipse(x, y, rng.uniform(-0.6, 0.6), -0.75, 0.05, 0.035,
                                           0.2))
    if f("fibrosis"):
        film.add("fibrosis", 0.18 * f("fibrosis") * lung
                 * (np.cos(x * 40) * np.cos(y * 40) > 0.5) * (y > 0))
    if f("hernia"):
        film.add("hernia", 0.3 * f("hernia") * _ellipse(x, y, 0.0, 0.62, 0.12, 0.08, 0.4))
    image = film.image * anatomy.exposure + rng.normal(0, 0.035, film.image.shape)
    return Radiograph(np.clip(image * 255, 0, 255).astype(np.uint8), film.regions)


def label_regions(image_id: str, drawn: list[tuple[str, Box]],
                  label_findings: dict[str, tuple[str, ...]]) -> list[tuple[str, str, Box]]:
    """Sidecar rows: every drawn finding's box under each label it makes (label -> findings:
    CHEXPERT_FROM_FINDINGS or CXR14_FROM_FINDINGS)."""
    return [(image_id, label, box) for label, made_of in label_findings.items()
            for finding, box in drawn if finding in made_of]


def render_lateral(size: int, anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(grid, grid)
    image = 0.15 + 0.45 * _ellipse(x, y, 0.0, 0.1, 0.6, 0.95, 0.2)
    image -= 0.3 * _ellipse(x, y, 0.05, -0.05, 0.4, 0.55, 0.3)
    image += 0.3 * _ellipse(x, y, -0.25, 0.3, anatomy.heart + 0.1, 0.22, 0.3)
    image += 0.3 * (np.abs(x - 0.45) < 0.06)
    image = image * anatomy.exposure + rng.normal(0, 0.035, image.shape)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def _encode(image: np.ndarray, suffix: str) -> bytes:
    buffer = io.BytesIO()
    if suffix == ".jpg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    else:
        Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _chexpert_values(findings: dict[str, float], rng: np.random.Generator,
                     radiologist: bool) -> list[str]:
    """CSV cells of the 14 observations, as the CheXpert labeler (or a radiologist) writes."""
    cells = []
    any_finding = False
    values: dict[str, str] = {}
    for name in CHEXPERT_LABELS[1:]:
        present = any(findings.get(f) for f in CHEXPERT_FROM_FINDINGS[name])
        if radiologist:
            values[name] = "1.0" if present else "0.0"
        elif present:
            values[name] = "-1.0" if rng.uniform() < 0.12 else "1.0"
        else:
            draw = rng.uniform()
            values[name] = "-1.0" if draw < 0.03 else "0.0" if draw < 0.3 else ""
        any_finding |= values[name] in ("1.0", "-1.0") and name != "Support Devices"
    if radiologist:
        cells.append("0.0" if any_finding else "1.0")
    else:
        cells.append("" if any_finding else "1.0")
    return cells + [values[name] for name in CHEXPERT_LABELS[1:]]


def _weaken_uncertain(findings: dict[str, float], cells: list[str]) -> dict[str, float]:
    """Findings whose label the labeler marked uncertain are drawn at half strength."""
    out = dict(findings)
    for name, cell in zip(CHEXPERT_LABELS, cells):
        if cell == "-1.0" and name in CHEXPERT_FROM_FINDINGS:
            for finding in CHEXPERT_FROM_FINDINGS[name]:
                if finding in out:
                    out[finding] = 0.5
    return out


def write_chexpert(root: pathlib.Path, num_patients: int, image_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)
    lines = {"train": [header], "valid": [header]}
    regions: list[tuple[str, str, Box]] = []
    num_valid = max(2, num_patients // 10)
    for number in range(1, num_patients + 1):
        split = "valid" if number > num_patients - num_valid else "train"
        patient = f"patient{number:05d}"
        anatomy = Anatomy(rng)
        sex, age = rng.choice(["Male", "Female"]), int(rng.integers(18, 90))
        for study in range(1, (1 if split == "valid" else int(rng.integers(1, 4))) + 1):
            findings = draw_findings(rng, "chexpert")
            cells = _chexpert_values(findings, rng, radiologist=split == "valid")
            drawn = _weaken_uncertain(findings, cells)
            views = ["frontal"] + (["lateral"] if rng.uniform() < 0.2 else [])
            for view_number, view in enumerate(views, start=1):
                relative = f"{split}/{patient}/study{study}/view{view_number}_{view}.jpg"
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                if view == "frontal":
                    image, found = render_frontal(image_size, anatomy, drawn, rng)
                    regions += label_regions(relative, found, CHEXPERT_FROM_FINDINGS)
                else:
                    image = render_lateral(image_size, anatomy, rng)
                target.write_bytes(_encode(image, ".jpg"))
                ap_pa = rng.choice(["AP", "PA"]) if view == "frontal" else "LL"
                lines[split].append(",".join([f"{RELEASE}/{relative}", str(sex), str(age),
                                              view.capitalize(), str(ap_pa), *cells]))
    for split, content in lines.items():
        (root / f"{split}.csv").write_text("\n".join(content) + "\n")
    write_regions(root, regions)


def write_cxr14(root: pathlib.Path, num_patients: int, image_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
            "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"]
    test_patients = set(rng.choice(np.arange(1, num_patients + 1), max(2, num_patients // 5),
                                   replace=False).tolist())
    lists: dict[str, list[str]] = {"train_val": [], "test": []}
    image_count = 0
    regions: list[tuple[str, str, Box]] = []
    for patient in range(1, num_patients + 1):
        anatomy = Anatomy(rng)
        sex, age = rng.choice(["M", "F"]), int(rng.integers(18, 90))
        for follow_up in range(int(rng.integers(1, 4))):
            findings = draw_findings(rng, "cxr14")
            labels = [name for name in CXR14_LABELS
                      if any(findings.get(f) for f in CXR14_FROM_FINDINGS[name])]
            name = f"{patient:08d}_{follow_up:03d}.png"
            folder = root / f"images_{image_count // 500 + 1:03d}" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            image, found = render_frontal(image_size, anatomy, findings, rng)
            (folder / name).write_bytes(_encode(image, ".png"))
            regions += label_regions(name, found, CXR14_FROM_FINDINGS)
            image_count += 1
            rows.append(f"{name},{'|'.join(labels) or 'No Finding'},{follow_up},{patient},"
                        f"{age + follow_up // 2:03d}Y,{sex},{rng.choice(['PA', 'AP'])},"
                        f"2500,2048,0.143,0.143,")
            lists["test" if patient in test_patients else "train_val"].append(name)
    (root / "Data_Entry_2017.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("\n".join(names) + "\n")
    write_regions(root, regions)


def write_demo_dataset(dataset: str, root: str | pathlib.Path, *, num_patients: int,
                       image_size: int, seed: int) -> pathlib.Path:
    writer = write_chexpert if dataset == "chexpert" else write_cxr14
    with staged_folder(root) as staging:
        writer(staging, num_patients, image_size, seed)
    return pathlib.Path(root)
