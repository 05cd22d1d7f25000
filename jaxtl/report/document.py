"""A report as a list of blocks, written as Markdown (PNGs beside it) and as one HTML file.

The HTML page embeds every figure as a base64 data URI and its style inline: one file that
opens offline, with nothing fetched.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from jaxtl.metrics.headline import markdown_table

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1rem 0; }
figcaption { font-size: 0.85rem; color: #444; max-width: 60rem; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2rem; }
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5rem 0.8rem; }
"""


@dataclasses.dataclass
class Figure:
    file: str
    png: bytes
    caption: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, as the HTML page lays the image out."""
        with Image.open(io.BytesIO(self.png)) as image:
            return image.size


@dataclasses.dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclasses.dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append((f"h{level}", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def banner(self, text: str) -> None:
        self.blocks.append(("banner", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", Table(header, rows)))

    def figure(self, file: str, png: bytes, caption: str) -> None:
        self.blocks.append(("figure", Figure(file, png, caption)))

    @property
    def figures(self) -> list[Figure]:
        return [block for kind, block in self.blocks if kind == "figure"]

    # --- Markdown -----------------------------------------------------------------------------
    def markdown(self) -> str:
        parts = [f"# {self.title}"]
        for kind, block in self.blocks:
            if kind.startswith("h"):
                parts.append("#" * int(kind[1:]) + " " + block)
            elif kind == "p":
                parts.append(block)
            elif kind == "banner":
                parts.append(f"> **{block}**")
            elif kind == "table":
                parts.append(markdown_table(block.header, block.rows))
            elif kind == "figure":
                parts.append(f"![{block.file}]({block.file})\n\n*{block.caption}*")
        return "\n\n".join(parts) + "\n"

    # --- HTML ---------------------------------------------------------------------------------
    def html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, block in self.blocks:
            if kind.startswith("h"):
                body.append(f"<{kind}>{_inline(block)}</{kind}>")
            elif kind == "p":
                body.append(f"<p>{_inline(block)}</p>")
            elif kind == "banner":
                body.append(f'<p class="banner"><strong>{_inline(block)}</strong></p>')
            elif kind == "table":
                head = "".join(f"<th>{_inline(str(cell))}</th>" for cell in block.header)
                rows = "".join("<tr>" + "".join(f"<td>{_inline(_cell(c))}</td>" for c in row)
                               + "</tr>" for row in block.rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "figure":
                data = base64.b64encode(block.png).decode("ascii")
                width, height = block.size
                body.append(f'<figure><img alt="{html.escape(block.file)}" width="{width}" '
                            f'height="{height}" src="data:image/png;base64,{data}"><figcaption>'
                            f"{_inline(block.caption)}</figcaption></figure>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                "<body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, out_dir: pathlib.Path) -> dict[str, pathlib.Path]:
        """report.md with its PNGs, and the self-contained report.html, in out_dir."""
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for figure in self.figures:
            (out_dir / figure.file).write_bytes(figure.png)
        (out_dir / MARKDOWN_FILE).write_text(self.markdown())
        (out_dir / HTML_FILE).write_text(self.html())
        return {"markdown": out_dir / MARKDOWN_FILE, "html": out_dir / HTML_FILE}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _inline(text: str) -> str:
    """Escaped text with `code` spans and **bold** as in the Markdown."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
