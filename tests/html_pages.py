"""Checks of a self-contained HTML page (the reports' report.html) that can fail: the page's
elements nest and close, and every <img> is an embedded PNG that decodes, drawn (not blank), of
the width and height the page lays it out at.

The single-run report is also rendered by headless Chromium (tests/headless_chromium.py), and
its screenshot checked to show these figures where the page lays them out.
"""

from __future__ import annotations

import base64
import html.parser
import io

import numpy as np
from PIL import Image

VOID = {"meta", "img", "br", "hr", "input", "link", "col", "source", "wbr", "area", "base"}


class _Page(html.parser.HTMLParser):
    """Elements nested as opened (every non-void element closed in order) and the images."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.images: list[dict[str, str]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def html_figures(page: str) -> list[tuple[str, Image.Image]]:
    """(alt, image) of every <img> of a page, checked: the page's elements nest and close, each
    image is an embedded PNG that decodes, drawn, of the width and height it is laid out at."""
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert not parser.errors and not parser.open, (parser.errors, parser.open)
    found = []
    for attrs in parser.images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix), attrs["src"][:40]
        data = base64.b64decode(attrs["src"][len(prefix):], validate=True)
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.format == "PNG"
        assert image.size == (int(attrs["width"]), int(attrs["height"]))
        assert min(image.size) > 50
        assert len(np.unique(np.asarray(image.convert("L")))) > 2  # drawn, not blank
        found.append((attrs["alt"], image))
    return found
