"""NIH's ChestX-ray14 bounding boxes, `BBox_List_2017.csv`, as shipped beside the label file.

984 boxes of 8 findings on 880 images, in pixels of the 1024 x 1024 PNGs (x, y of the top-left
corner, width, height). Quirks handled: the header `Image Index,Finding Label,Bbox [x,y,w,h],,,`
splits its bracketed name over four cells and ends in three empty ones, and rows may end in
empty cells too; the file names Infiltration `Infiltrate`, read as the label `Infiltration`.
"""

from __future__ import annotations

import csv
import pathlib

from jaxtl.data.records import DataError
from jaxtl.data.regions import Box, Regions, collect

BBOX_FILE = "BBox_List_2017.csv"
FINDING_NAMES = {"Infiltrate": "Infiltration"}  # the box file's name -> the label's


def read_bbox_list(path: pathlib.Path) -> Regions:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or [cell.strip() for cell in rows[0][:2]] != ["Image Index", "Finding Label"]:
        raise DataError(f"{path}: expected NIH's header 'Image Index,Finding Label,Bbox "
                        f"[x,y,w,h],,,'; replace the file with the one from the download")
    boxes = []
    for number, row in enumerate(rows[1:], start=2):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        try:
            x, y, width, height = map(float, cells[2:6])
        except ValueError:
            raise DataError(f"{path}, line {number}: expected image,finding,x,y,w,h; found "
                            f"{','.join(row)!r}") from None
        finding = FINDING_NAMES.get(cells[1], cells[1])
        boxes.append((cells[0], finding, Box(x, y, width, height)))
    return collect(boxes, str(path))


def regions(root: pathlib.Path) -> Regions | None:
    """The root's BBox_List_2017.csv, or None when the download has none."""
    path = pathlib.Path(root) / BBOX_FILE
    return read_bbox_list(path) if path.is_file() else None
