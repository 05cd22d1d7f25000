"""The documentation: the site builds with warnings as errors, the README stays one screen of
essentials, and every relative link in README.md and docs/ points to a file that exists."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 200
GENERATED = (DOCS / "_build", DOCS / "_autosummary")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def pages() -> list[pathlib.Path]:
    return [REPO / "README.md"] + sorted(
        page for page in DOCS.rglob("*.md")
        if not any(folder in page.parents for folder in GENERATED))


def relative_links(page: pathlib.Path) -> list[str]:
    """The link targets of a markdown page outside code blocks and inline code, without
    web addresses and in-page anchors."""
    links, in_code = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        prose = re.sub(r"`[^`]*`", "", line)
        links += [target for target in LINK.findall(prose)
                  if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]
    return links


def test_readme_fits_on_a_few_screens():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; move details into docs/ (at most "
        f"{README_MAX_LINES})")


def test_every_relative_link_points_to_a_file():
    broken = []
    checked = 0
    for page in pages():
        for target in relative_links(page):
            checked += 1
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert checked > 20, checked  # the pages link to each other
    assert not broken, "\n".join(broken)


def test_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md) [gone](missing.md#x) `[code](no.md)` [web](https://x.org)\n"
                    "```\n[block](no.md)\n```\n")
    assert relative_links(page) == ["page.md", "missing.md#x"]


@pytest.mark.slow
def test_site_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-5000:]
    html = tmp_path / "html"
    for page in ("index", "getting-started", "datasets/chest", "api", "ARCHITECTURE",
                 "_autosummary/jaxtl.commands.cli"):
        assert (html / f"{page}.html").is_file(), page
    assert "check_config" in (html / "_autosummary" / "jaxtl.commands.cli.html").read_text()
