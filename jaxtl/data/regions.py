"""Where the findings of an image are known to be: boxes per image and finding.

Boxes are in pixels of the image as stored (the file, or the decoded array of an array
dataset), x to the right and y down from the top-left corner, on pixel edges: a box (x, y, w, h)
covers [x, x + w) x [y, y + h), so pixel (row i, column j) is inside when its centre
(j + 0.5, i + 0.5) is. Real datasets ship them in their own files (ChestX-ray14's
`BBox_List_2017.csv`, read by jaxtl/data/chest/bbox.py); every demo writer records where it drew
each lesion or finding in the demo sidecar (`demo_data.REGIONS_FILE`), written and read here:

    image_id,finding,x,y,width,height
    10_left,haemorrhage,41.25,20.5,6.0,5.5

`finding` names are the dataset's: a label name (chest) or a kind of lesion (EyePACS). Which
findings belong to a task's label is the dataset spec's `region_findings`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
from collections.abc import Collection, Iterable, Mapping

from jaxtl.core.errors import DataError

CSV_HEADER = ("image_id", "finding", "x", "y", "width", "height")


@dataclasses.dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @classmethod
    def around(cls, xs: Iterable[float], ys: Iterable[float], margin: float = 0.0) -> Box:
        """The smallest box holding the points (x, y), widened by `margin` on every side."""
        xs, ys = list(xs), list(ys)
        left, top = min(xs) - margin, min(ys) - margin
        return cls(left, top, max(xs) + margin - left, max(ys) + margin - top)

    def clipped(self, width: float, height: float) -> Box | None:
        """The part inside [0, width) x [0, height); None if nothing is left."""
        left, top = max(self.x, 0.0), max(self.y, 0.0)
        right, bottom = min(self.x + self.width, width), min(self.y + self.height, height)
        return Box(left, top, right - left, bottom - top) if right > left and bottom > top \
            else None


@dataclasses.dataclass(frozen=True)
class Regions:
    """Known regions of a dataset: image id -> finding -> boxes, read from `source`."""

    source: str
    boxes: Mapping[str, Mapping[str, tuple[Box, ...]]]

    def of(self, image_id: str, findings: Collection[str] | None = None) -> tuple[Box, ...]:
        """The image's boxes of `findings` (None: of every finding)."""
        found = self.boxes.get(image_id, {})
        return tuple(box for finding, boxes in found.items()
                     if findings is None or finding in findings for box in boxes)

    @property
    def findings(self) -> set[str]:
        return {finding for found in self.boxes.values() for finding in found}


def collect(rows: Iterable[tuple[str, str, Box]], source: str) -> Regions:
    """Regions from (image_id, finding, box) rows."""
    boxes: dict[str, dict[str, list[Box]]] = {}
    for image_id, finding, box in rows:
        boxes.setdefault(image_id, {}).setdefault(finding, []).append(box)
    return Regions(source, {image: {finding: tuple(found) for finding, found in by.items()}
                            for image, by in boxes.items()})


def to_csv(rows: Iterable[tuple[str, str, Box]]) -> str:
    """The sidecar's text of (image_id, finding, box) rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for image_id, finding, box in rows:
        writer.writerow([image_id, finding, *(f"{v:.6g}" for v in dataclasses.astuple(box))])
    return out.getvalue()


def read_csv(path: pathlib.Path) -> Regions:
    """A sidecar file (see the module doc)."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        if header != CSV_HEADER:
            raise DataError(f"{path}: expected the header {','.join(CSV_HEADER)}, found "
                            f"{','.join(header)!r}; delete the demo folder so it is rewritten")
        try:
            rows = [(image_id, finding, Box(*map(float, numbers)))
                    for image_id, finding, *numbers in reader]
        except (TypeError, ValueError) as error:
            raise DataError(f"{path}: a row is not image_id,finding,x,y,width,height "
                            f"({error}); delete the demo folder so it is rewritten") from None
    return collect(rows, str(path))
