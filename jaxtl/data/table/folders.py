"""Class folders of your own images (the ImageFolder layout): `root/<class>/<image>`.

Every file Pillow knows by its extension (PNG, JPEG, TIFF, BMP, ...) under a class folder, at
any depth, is an image of that class; other files (notes, .DS_Store) and files directly in the
root are left out and counted in the log. Folders starting with '.' are ignored.
"""

from __future__ import annotations

import pathlib

from absl import logging
from PIL import Image

from jaxtl.data.records import DataError
from jaxtl.data.table.rows import Row


def image_extensions() -> set[str]:
    return {extension.lower() for extension in Image.registered_extensions()}


def read_rows(root: pathlib.Path) -> list[Row]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: for the folders dataset data.root holds one "
                        f"folder per class (root/<class>/<image>), or leave it empty for the "
                        f"demo data")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root} holds no class folders; the layout is root/<class>/<image>")
    extensions = image_extensions()
    rows, skipped = [], sum(1 for p in root.iterdir() if p.is_file())
    for folder in folders:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            if file.suffix.lower() not in extensions or any(
                    part.startswith(".") for part in file.relative_to(folder).parts):
                skipped += 1
                continue
            image_id = file.relative_to(root).as_posix()
            rows.append(Row(where=str(file), image_id=image_id, path=str(file),
                            value=folder.name))
    if skipped:
        logging.warning("%s: %d files that are not images of a class folder are left out",
                        root, skipped)
    if not rows:
        raise DataError(f"{root}: the class folders hold no image files")
    return rows
