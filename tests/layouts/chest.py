"""Small CheXpert and ChestX-ray14 downloads written by hand, quirks included."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from jaxtl.data.chest.labels import CHEXPERT_LABELS

CHEXPERT_HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)


def chexpert_row(patient: int, study: int, view: str, values: dict[str, str],
                 split: str = "train", ap_pa: str = "AP", number: int = 1) -> str:
    relative = f"{split}/patient{patient:05d}/study{study}/view{number}_{view.lower()}.jpg"
    cells = [values.get(name, "") for name in CHEXPERT_LABELS]
    return ",".join([f"CheXpert-v1.0-small/{relative}", "Female", "63", view,
                     ap_pa if view == "Frontal" else "", *cells])


def write_image(path: pathlib.Path, size: int = 24, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_chexpert(root: pathlib.Path, train_rows: list[str], valid_rows: list[str],
                   images: bool = True) -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("\n".join([CHEXPERT_HEADER, *train_rows]) + "\n")
    (root / "valid.csv").write_text("\n".join([CHEXPERT_HEADER, *valid_rows]) + "\n")
    if images:
        for row in train_rows + valid_rows:
            write_image(root / row.split(",")[0].split("/", 1)[1])
    return root


CXR14_HEADER_2017 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,"
                     "Patient Gender,View Position,OriginalImage[Width,Height],"
                     "OriginalImagePixelSpacing[x,y],")
CXR14_HEADER_2020 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,"
                     "Patient Sex,View Position,OriginalImage[Width,Height],"
                     "OriginalImagePixelSpacing[x,y]")

# (image, findings, patient, age as written in 2017)
CXR14_ROWS = [
    ("00000001_000.png", "Cardiomegaly", 1, "058Y", "PA"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, "058Y", "PA"),
    ("00000002_000.png", "No Finding", 2, "081Y", "AP"),
    ("00000003_000.png", "Infiltration|Nodule", 3, "006M", "AP"),
    ("00000004_000.png", "Effusion|Mass|Pleural_Thickening", 4, "045Y", "PA"),
    ("00000005_000.png", "Hernia", 5, "070Y", "PA"),
    ("00000006_000.png", "No Finding", 6, "033Y", "PA"),
    ("00000007_000.png", "Atelectasis", 7, "052Y", "AP"),
]


def write_cxr14(root: pathlib.Path, *, version: str = "2017", nested: bool = False,
                images: bool = True, test_patients=(2, 4)) -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    if version == "2017":
        lines = [CXR14_HEADER_2017] + [
            f"{image},{findings},0,{patient},{age},M,{view},2500,2048,0.143,0.143,"
            for image, findings, patient, age, view in CXR14_ROWS]
        (root / "Data_Entry_2017.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    else:
        lines = [CXR14_HEADER_2020] + [
            f"{image},{findings},0,{patient},{int(age[:3])},M,{view},2500,2048,0.143,0.143"
            for image, findings, patient, age, view in CXR14_ROWS]
        (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    test = [row[0] for row in CXR14_ROWS if row[2] in test_patients]
    train_val = [row[0] for row in CXR14_ROWS if row[2] not in test_patients]
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    if images:
        for index, row in enumerate(CXR14_ROWS):
            folder = (root / f"images_{index // 3 + 1:03d}" / "images") if nested else \
                root / "images"
            write_image(folder / row[0])
    return root
