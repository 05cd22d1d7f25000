"""Demo data of your own-data forms: synthetic fundus photographs graded 0..4.

The images and grades are those of the EyePACS demo (`jaxtl.data.eyepacs.demo`: two eyes per
patient, lesions growing with the grade), written in the two forms jaxtl reads:

    csv:      root/labels.csv and root/images/<patient>_<eye>.jpeg; columns path (relative
              to the table), label (the grade), patient, and two label columns for the
              multi-label form: referable (grade >= 2; -1, uncertain, for a third of the
              grade-2 images) and proliferative (grade 4; empty for a tenth of the images)
    folders:  root/<grade>/<patient>_<eye>.jpeg (no patients: images are split one by one)
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from jaxtl.core.atomic import staged_folder
from jaxtl.data.demo_store import README_FILE
from jaxtl.data.eyepacs.demo import demo_labels, render_fundus

TABLE = "labels.csv"
IMAGES = "images"
LABEL_COLUMNS = ("referable", "proliferative")


def write_demo_dataset(root: str | pathlib.Path, form: str, *, num_patients: int,
                       image_size: int, seed: int) -> pathlib.Path:
    """Writes the demo in `form` ('csv' or 'folders') to `root`; FileExistsError if it exists."""
    layout_seq, images_seq, cells_seq = np.random.SeedSequence(seed).spawn(3)
    rows = demo_labels(num_patients, np.random.default_rng(layout_seq))
    cells = np.random.default_rng(cells_seq)
    with staged_folder(root) as staging:
        lines = [f"path,label,patient,{','.join(LABEL_COLUMNS)}"]
        for (image_id, grade), image_seq in zip(rows, images_seq.spawn(len(rows))):
            eye = image_id.rsplit("_", 1)[1]
            pixels = render_fundus(grade, eye, image_size, np.random.default_rng(image_seq)).pixels
            folder = IMAGES if form == "csv" else str(grade)
            (staging / folder).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(staging / folder / f"{image_id}.jpeg", quality=90)
            referable = "-1" if grade == 2 and cells.uniform() < 1 / 3 else str(int(grade >= 2))
            proliferative = "" if cells.uniform() < 0.1 else str(int(grade == 4))
            lines.append(f"{IMAGES}/{image_id}.jpeg,{grade},{image_id.split('_')[0]},"
                         f"{referable},{proliferative}")
        if form == "csv":
            (staging / TABLE).write_text("\n".join(lines) + "\n")
        (staging / README_FILE).write_text(
            f"SYNTHETIC DEMO DATA written by jaxtl (jaxtl.data.table.demo) in the {form} form: "
            f"drawn fundus photographs graded 0..4, {num_patients} patients (seed {seed}). "
            f"Not real data; never judge a model on it.\n")
    return pathlib.Path(root)
