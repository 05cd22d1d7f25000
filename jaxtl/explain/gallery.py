"""What a person looks at: overlay PNGs (the input beside the map over it) and the HTML gallery.

An overlay shows the image as the model sees it (after the evaluation crop and resize; 1 channel
grey, 3 RGB, any other number the mean of the channels, stretched to 0..255) beside the same
image with the map blended over it (matplotlib's `jet`, the map divided by its maximum, alpha
0.5), the known regions as green boxes and the point the map points at (the centre of its
maximal cell, jaxtl/explain/localisation.py) as a white cross. Both are enlarged
with nearest-neighbour pixels to at least `MIN_SIDE` px.
"""

from __future__ import annotations

import dataclasses
import html
import io
import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from jaxtl.data.regions import Box

MIN_SIDE = 192
ALPHA = 0.5
BOX_COLOUR = (0, 255, 0)
PEAK_COLOUR = (255, 255, 255)


def display_pixels(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of the transform's pixels (H, W, C) (see the module doc)."""
    pixels = np.asarray(pixels)
    if pixels.shape[-1] != 3:
        pixels = pixels.mean(axis=-1, keepdims=True)
    if pixels.dtype != np.uint8:
        low, high = float(pixels.min()), float(pixels.max())
        pixels = ((pixels - low) / max(high - low, 1e-12) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def overlay_png(pixels: np.ndarray, attribution: np.ndarray, boxes: Sequence[Box],
                peak: tuple[float, float] | None) -> bytes:
    """The input and the map over it, side by side; `attribution` at input size (R, R), boxes
    and the point the map points at (`localisation.peak_point`, (x, y)) in input pixels."""
    image = display_pixels(pixels).astype(np.float32)
    peak_value = float(np.max(attribution))
    normalised = attribution / peak_value if peak_value > 0 else np.zeros_like(attribution)
    colours = matplotlib.colormaps["jet"](normalised)[..., :3] * 255.0
    blended = (1.0 - ALPHA) * image + ALPHA * colours if peak_value > 0 else image
    scale = max(1, math.ceil(MIN_SIDE / image.shape[0]))
    size = (image.shape[1] * scale, image.shape[0] * scale)
    left = Image.fromarray(image.astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
    right = Image.fromarray(blended.astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(right)
    for box in boxes:
        x0, y0 = box.x * scale, box.y * scale
        # A box cut to a sliver at the image edge (under a pixel wide) is drawn as a line.
        x1, y1 = max(x0, (box.x + box.width) * scale - 1), max(y0, (box.y + box.height) * scale - 1)
        draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR)
    if peak is not None:
        x, y, arm = peak[0] * scale, peak[1] * scale, 1.5 * scale + 2
        draw.line([x - arm, y, x + arm, y], fill=PEAK_COLOUR)
        draw.line([x, y - arm, x, y + arm], fill=PEAK_COLOUR)
    both = Image.new("RGB", (2 * size[0] + scale, size[1]), (255, 255, 255))
    both.paste(left, (0, 0))
    both.paste(right, (size[0] + scale, 0))
    buffer = io.BytesIO()
    both.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class Card:
    """One explained image and target in the gallery."""

    overlay: str  # file name relative to the gallery page
    image_id: str
    label: str
    prediction: str
    target: str
    pointing: str  # "hit", "miss" or "" (no regions known)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; }
figure { margin: 0; width: 26rem; font-size: 0.8rem; }
img { width: 100%; image-rendering: pixelated; }
.hit { color: #070; } .miss { color: #a00; }
"""


def page(title: str, notes: Sequence[str], summary: Sequence[Sequence[str]],
         cards: Sequence[Card]) -> str:
    """The gallery page: notes, a table of localisation scores (first row the header), then
    one card per explained image and target."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    if summary:
        head, *rows = summary
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                     + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>"
                                                          for c in row) + "</tr>"
                                         for row in rows) + "</table>")
    parts.append('<div class="cards">')
    for card in cards:
        pointing = (f' <span class="{card.pointing}">pointing game: {card.pointing}</span>'
                    if card.pointing else "")
        parts.append(
            f'<figure><img src="{html.escape(card.overlay)}" alt="{html.escape(card.image_id)}">'
            f"<figcaption><b>{html.escape(card.image_id)}</b> label: {html.escape(card.label)}"
            f"; prediction: {html.escape(card.prediction)}; map of: {html.escape(card.target)}"
            f"{pointing}</figcaption></figure>")
    parts.append("</div>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
