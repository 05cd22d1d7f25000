"""Sphinx configuration of jaxtl's documentation site: `sphinx-build -W --keep-going -b html
docs docs/_build/html` (the `docs` extra installs what it needs; tests/test_docs.py builds it).

Pages are MyST markdown, as JAX, Flax, Optax and Grain write theirs, so the same files read well
on GitHub. The theme is furo, the other theme the JAX ecosystem uses besides
sphinx-book-theme (JAX, Flax and Optax use the latter): sphinx-book-theme builds on
pydata-sphinx-theme and has tended to trail new Sphinx releases, while furo is one small
package with no theme framework below it that keeps up with Sphinx, gives the same left-hand
navigation, search and light/dark modes, and keeps the build in tests/test_docs.py fast. The API reference is generated from the docstrings
(autosummary over every jaxtl module, autodoc for their members).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's jaxtl, whatever is installed

import jaxtl  # noqa: E402

project = "jaxtl"
author = "jaxtl authors"
copyright = "jaxtl authors"  # noqa: A001 - Sphinx's name
release = jaxtl.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}  # .rst: autosummary's
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build"]

# Markdown: `#anchor` links to headings work across pages (docs/foo.md#a-heading), as on GitHub.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# API reference: one page per module (api.md starts the recursion at the package).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
# Run in an interpreter with torch and timm (the parity tools), which jaxtl does not install.
autodoc_mock_imports = ["timm", "torch", "torchvision"]
add_module_names = False


def docstring_as_written(app, what, name, obj, options, lines: list[str]) -> None:
    """jaxtl's docstrings are plain text written for `help()` and the terminal (backticks for
    code, `*` as a multiplication sign), not reStructuredText: show them as written, in a
    literal block, instead of letting docutils misread them."""
    del app, what, name, obj, options
    if not any(line.strip() for line in lines):
        return
    text = [line.rstrip() for line in lines]
    lines[:] = ["::", ""] + ["   " + line if line else "" for line in text] + [""]


def setup(app) -> None:
    app.connect("autodoc-process-docstring", docstring_as_written)


html_theme = "furo"
html_title = f"jaxtl {release}"
html_static_path: list[str] = []
