"""Synthetic squares and circles on noise, in the layout reader.py reads."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image, ImageDraw

from jaxtl.core.atomic import staged_folder
from squares.reader import IMAGE_DIR, LABELS_FILE, SHAPES


def write_demo_dataset(root: pathlib.Path, *, num_patients: int, image_size: int,
                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = ["image,shape,patient"]
    with staged_folder(root) as staging:
        (staging / IMAGE_DIR).mkdir()
        for patient in range(num_patients):
            for visit in range(2):
                shape = SHAPES[int(rng.integers(0, 2))]
                noise = rng.integers(0, 80, (image_size, image_size, 3), dtype=np.uint8)
                image = Image.fromarray(noise)
                half = image_size // 4
                box = (half, half, image_size - half, image_size - half)
                draw = ImageDraw.Draw(image)
                (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=(230,) * 3)
                name = f"p{patient}_v{visit}"
                image.save(staging / IMAGE_DIR / f"{name}.png")
                rows.append(f"{name},{shape},p{patient}")
        (staging / LABELS_FILE).write_text("\n".join(rows) + "\n")
