"""A table of your own images: one CSV row per image, columns named in the config.

The path column holds the image file, relative to the table's folder or absolute. Every
problem names the table and the line: a missing column, a row of the wrong width, an empty or
repeated path, a path that does not exist.
"""

from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Mapping

from jaxtl.data.records import DataError
from jaxtl.data.table.rows import Row


def read_rows(table: pathlib.Path, *, columns: Mapping[str, str], path_column: str,
              value_columns: tuple[str, ...], group_column: str = "",
              split_column: str = "") -> list[Row]:
    """The table's rows. `columns` maps every column the config names to its config key (for
    messages); `value_columns` holds the class column or the label columns."""
    if not table.is_file():
        raise DataError(f"{table} is not a file: for the csv dataset data.root is the table (a "
                        f"CSV file with a header row), or leave it empty for the demo data")
    with table.open(newline="", encoding="utf-8-sig") as handle:
        lines = list(csv.reader(handle))
    if not lines:
        raise DataError(f"{table} is empty; it needs a header row naming its columns")
    header = [cell.strip() for cell in lines[0]]
    for column, key in columns.items():
        if column and column not in header:
            raise DataError(f"{table}: no column {column!r} ({key}); the header names "
                            f"{', '.join(map(repr, header))}: set {key} to one of them")
    position = {name: header.index(name) for name in header if name}
    rows: list[Row] = []
    seen: dict[str, str] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{table}, line {number}"
        if len(cells) != len(header):
            raise DataError(f"{where}: {len(cells)} cells, but the header has {len(header)}")
        image = cells[position[path_column]].strip()
        if not image:
            raise DataError(f"{where}: the path ({path_column!r}) is empty")
        path = os.path.normpath(image if os.path.isabs(image) else table.parent / image)
        if path in seen:
            raise DataError(f"{where}: {image} is listed again (first at {seen[path]}); list "
                            f"each image once")
        seen[path] = where
        values = tuple(cells[position[column]].strip() for column in value_columns)
        rows.append(Row(where=where, image_id=image, path=path,
                        value=values[0] if len(values) == 1 else values,
                        group=cells[position[group_column]].strip() if group_column else "",
                        split=cells[position[split_column]].strip() if split_column else ""))
    if not rows:
        raise DataError(f"{table} lists no images")
    missing = [row for row in rows if not os.path.isfile(row.path)]
    if missing:
        raise DataError(f"{missing[0].where}: {missing[0].image_id} does not exist "
                        f"({missing[0].path}); {len(missing)} of the {len(rows)} images of "
                        f"{table} are missing (lines "
                        f"{', '.join(r.where.rpartition(' ')[2] for r in missing[:5])}"
                        f"{', ...' if len(missing) > 5 else ''}); paths are relative to the "
                        f"table's folder unless absolute")
    return rows
