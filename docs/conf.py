"""Sphinx configuration of jaxtl's documentation site: `sphinx-build -W --keep-going -b html
docs docs/_build/html` (the `docs` extra installs what it needs; tests/test_docs.py builds it).

Pages are MyST markdown, as JAX, Flax, Optax and Grain write theirs, so the same files read well
on GitHub. The theme is furo, the other theme the JAX ecosystem uses besides
sphinx-book-theme (JAX, Flax and Optax use the latter): sphinx-book-theme builds on
pydata-sphinx-theme and has tended to trail new Sphinx releases, while furo is one small
package with no theme framework below it that keeps up with Sphinx, gives the same left-hand
navigation, search and light/dark modes, and keeps the build in tests/test_docs.py fast.
The API reference is generated from the docstrings (autosummary over every jaxtl module,
autodoc for their members), and the settings reference (settings.md) from the settings'
declarations, into docs/_generated/ at every build.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sphinx import addnodes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's jaxtl, whatever is installed

# jaxtl imports scikit-learn at its first metric, which here may fall inside an autodoc import
# while torch is mocked (autodoc_mock_imports below): SciPy's statistics, imported by
# scikit-learn, then take the mock for torch (array_api_compat's issubclass raises TypeError).
# Imported first, before any mock.
import sklearn.metrics  # noqa: F401

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
exclude_patterns = ["_build", "_generated"]  # _generated: included by pages

# Markdown: `#anchor` links to headings work across pages (docs/foo.md#a-heading), as on GitHub.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# API reference: one page per module (api.md starts the recursion at the package).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
# Run in an interpreter with torch, timm, transformers and open_clip (the parity tools), which
# jaxtl does not install.
autodoc_mock_imports = ["timm", "torch", "torchvision", "transformers", "open_clip"]
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


GENERATED = Path(__file__).resolve().parent / "_generated"
SETTINGS_CONFIG = "configs/eyepacs.py"  # whose values the common settings' table shows


def common_settings() -> str:
    """The Markdown of `python -m jaxtl.commands.settings --config configs/eyepacs.py
    --markdown`, the common sections only (each dataset's own: `dataset_settings`)."""
    from jaxtl.commands import settings as listing
    from jaxtl.config.base import COMMON
    from jaxtl.config.files import load_config
    from jaxtl.core.settings import flat

    common = flat(COMMON)
    config = load_config(str(ROOT / SETTINGS_CONFIG))
    rows = [row for row in listing.rows(config) if row.key in common]
    return listing.as_markdown(listing.by_section(rows))


def dataset_settings() -> str:
    """Each dataset's tasks and own sections (a table), then one table per section with each
    key's default, what it allows and what it means, from the dataset specs' declarations."""
    from jaxtl.commands import settings as listing
    from jaxtl.config.base import COMMON
    from jaxtl.core.settings import allowed_values
    from jaxtl.data import registry

    lines = ["| Dataset | `data.task` | Its own sections |", "| --- | --- | --- |"]
    def described(keys) -> dict:  # what the page shows of a section's settings
        return {key: (repr(setting.default), allowed_values(setting.rule), setting.help)
                for key, setting in keys.items()}

    sections: dict[str, tuple[list[str], dict]] = {}  # section -> (datasets, its settings)
    for name in registry.names():
        spec = registry.get(name)
        tasks = spec.settings.get("data", {}).get("task")
        own = [section for section in spec.settings if section not in COMMON]
        lines.append(f"| `{name}` | {allowed_values(tasks.rule) if tasks else ''} | "
                     f"{', '.join(f'`{section}`' for section in own)} |")
        for section in own:
            datasets, keys = sections.setdefault(section, ([], spec.settings[section]))
            if described(keys) != described(spec.settings[section]):
                raise ValueError(f"section {section!r} is declared differently by "
                                 f"{datasets[0]} and {name}")
            datasets.append(name)
    lines.append("")
    for section, (datasets, keys) in sections.items():
        lines += [f"### {section}", "",
                  f"Declared by {', '.join(f'`{name}`' for name in datasets)}.", ""]
        rows = [listing.Row(f"{section}.{key}", setting.default,
                            allowed_values(setting.rule), setting.help)
                for key, setting in keys.items()]
        table = listing.as_markdown({section: rows}).split("\n", 2)[2]  # without the heading
        lines.append(table.replace("| Value |", "| Default |", 1))
    return "\n".join(lines)


def write_generated_pages(app) -> None:
    """docs/_generated/: the pages that settings.md and tpu.md include, written from the
    code."""
    del app
    GENERATED.mkdir(exist_ok=True)
    from jaxtl.core.chips import markdown_table

    for name, text in (("settings_common.md", common_settings()),
                       ("settings_datasets.md", dataset_settings()),
                       ("tpu_chips.md", markdown_table())):
        path = GENERATED / name
        if not path.exists() or path.read_text() != text:  # unchanged: no rebuild
            path.write_text(text)


API_PAGES = ("api", "_autosummary/")  # the API reference: its index page and a page per module


def api_modules_off_the_sidebar(app, env) -> None:
    """The sidebar lists the guide's pages and the API reference's index, not its ~170 module
    pages: furo draws the whole navigation tree into every page, and with every module in it
    that tree took half of the build's time. Each module page stays in the site's toctree (so
    no page is an orphan, and prev/next links run through them) and is linked from the
    tables of the API page and its package's page."""
    del app
    for docname, toc in env.tocs.items():
        if docname.startswith(API_PAGES):
            for toctree in list(toc.findall(addnodes.toctree)):
                toctree.parent.remove(toctree)


def setup(app) -> None:
    app.connect("autodoc-process-docstring", docstring_as_written)
    app.connect("builder-inited", write_generated_pages)
    app.connect("env-updated", api_modules_off_the_sidebar)


html_theme = "furo"
html_title = f"jaxtl {release}"
html_static_path: list[str] = []
