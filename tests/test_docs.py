"""The documentation: the site builds with warnings as errors, the README stays one screen of
essentials, every relative link in README.md and docs/ points to a file that exists, and the
settings reference lists every declared setting."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 200
GENERATED = (DOCS / "_build", DOCS / "_autosummary", DOCS / "_generated")
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


def docs_conf():
    """docs/conf.py as a module (it writes the generated pages)."""
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_keys(markdown: str) -> list[str]:
    """The first cell of every table row: the settings a generated page lists."""
    return re.findall(r"^\| `([\w.]+)` \|", markdown, flags=re.MULTILINE)


def test_settings_reference_lists_every_declared_setting():
    from jaxtl.config.base import COMMON
    from jaxtl.core.settings import flat
    from jaxtl.data import registry

    conf = docs_conf()
    common = table_keys(conf.common_settings())
    assert common == list(flat(COMMON)), set(common) ^ set(flat(COMMON))
    own = {f"{section}.{key}" for name in registry.names()
           for section, keys in registry.get(name).settings.items() if section not in COMMON
           for key in keys}
    listed = conf.dataset_settings()
    assert set(table_keys(listed)) - set(registry.names()) == own
    for name in registry.names():  # each dataset's row names its tasks
        tasks = registry.get(name).settings["data"]["task"].rule.allowed
        assert f"| `{name}` | {tasks} |" in listed, name


def test_settings_page_includes_the_generated_pages():
    page = (DOCS / "settings.md").read_text()
    for name in ("settings_common.md", "settings_datasets.md"):
        assert f"```{{include}} _generated/{name}" in page, name
    assert "/docs/_generated/" in (REPO / ".gitignore").read_text().splitlines()


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
                 "settings", "_autosummary/jaxtl.commands.cli"):
        assert (html / f"{page}.html").is_file(), page
    settings = (html / "settings.html").read_text()
    assert "optim.lr" in settings and "chest.uncertain" in settings
    assert "check_config" in (html / "_autosummary" / "jaxtl.commands.cli.html").read_text()
