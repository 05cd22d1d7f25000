"""Reading the text files of a download (label tables, split lists) with one clear error.

Every dataset's label files are UTF-8 text (a BOM is allowed, as spreadsheet programs write);
a file in another encoding (UTF-16 from Excel's "Unicode text", Latin-1, ...) or one that is not
text at all is a `DataError` naming the file and how to fix it, never a UnicodeDecodeError.
"""

from __future__ import annotations

import csv
import io
import pathlib

from jaxtl.core.errors import DataError


def read_text(path: pathlib.Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                        f"save it as UTF-8 (in a spreadsheet program: CSV UTF-8)") from None


def read_csv(path: pathlib.Path) -> list[list[str]]:
    """The rows of a CSV file, every cell a string."""
    return list(csv.reader(io.StringIO(read_text(path), newline="")))


def read_lines(path: pathlib.Path) -> list[str]:
    """The non-empty lines of a text file (a split list), stripped."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]
