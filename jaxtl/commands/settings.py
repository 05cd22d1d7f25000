"""Every setting of a config: its value there, what it allows and what it means, by section.

    python -m jaxtl.commands.settings --config configs/eyepacs.py
    python -m jaxtl.commands.settings --config configs/eyepacs.py --section optim
    python -m jaxtl.commands.settings --config configs/chexpert.py --markdown > settings.md

Read from the declarations (jaxtl/config/base.py and the dataset's spec.py), so the listing is
what validation checks. `--markdown` prints a table per section for the documentation.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import ml_collections
from absl import flags

from jaxtl.commands import cli
from jaxtl.config import validation as configuration
from jaxtl.config.base import flatten, settings_of
from jaxtl.core.errors import UserError
from jaxtl.core.settings import allowed_values, unknown_setting

WIDTH = 96  # columns of the plain-text listing


def define_flags() -> cli.Options:
    return {
        "config": cli.config_flag("Experiment config file (configs/*.py), with "
                                  "--config.KEY=VALUE overrides."),
        "section": flags.DEFINE_string("section", None, "List this section only (e.g. optim; "
                                       "'dataset' for the top-level key)."),
        "markdown": flags.DEFINE_bool("markdown", False, "Print a Markdown table per section "
                                      "instead of plain text."),
    }


@dataclasses.dataclass(frozen=True)
class Row:
    key: str  # 'section.key', or 'dataset'
    value: Any  # in this config
    allowed: str
    help: str

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0] or self.key


def rows(config: ml_collections.ConfigDict) -> list[Row]:
    """One row per leaf of `config`: the declared keys in their declaration order, then any
    key nothing declares (saying so)."""
    settings = settings_of(configuration.dataset_spec(config))
    leaves = dict(flatten(config))
    return ([Row(key, leaves[key], allowed_values(setting.rule), setting.help)
             for key, setting in settings.items() if key in leaves]
            + [Row(key, value, "", unknown_setting(key, settings))
               for key, value in leaves.items() if key not in settings])


def by_section(listed: list[Row], section: str | None = None) -> dict[str, list[Row]]:
    """The rows grouped by section (only `section` when given: UserError if there is none)."""
    grouped: dict[str, list[Row]] = {}
    for row in listed:
        grouped.setdefault(row.section, []).append(row)
    if section is None:
        return grouped
    if section not in grouped:
        raise UserError(f"--section {section}: this config has no such section; its sections "
                        f"are {', '.join(grouped)}")
    return {section: grouped[section]}


def as_text(grouped: dict[str, list[Row]]) -> str:
    indent = " " * 6
    lines = []
    for section, section_rows in grouped.items():
        lines += [f"[{section}]"]
        for row in section_rows:
            lines.append(f"  {row.key} = {row.value!r}")
            for label, text in (("allowed", row.allowed), ("", row.help)):
                if text:
                    # no break at hyphens: "log-loss" and "--config.x" stay whole
                    lines += textwrap.wrap(f"{label}: {text}" if label else text, WIDTH,
                                           initial_indent=indent, subsequent_indent=indent,
                                           break_on_hyphens=False)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(grouped: dict[str, list[Row]]) -> str:
    lines = []
    for section, section_rows in grouped.items():
        lines += [f"### {section}", "", "| Setting | Value | Allowed | Meaning |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| `{row.key}` | `{_cell(repr(row.value))}` | {_cell(row.allowed)} | "
                  f"{_cell(row.help)} |" for row in section_rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str], options: cli.Options) -> None:
    del argv
    grouped = by_section(rows(options["config"].value), options["section"].value)
    print(as_markdown(grouped) if options["markdown"].value else as_text(grouped), end="")


if __name__ == "__main__":
    cli.run(main, define_flags, required=("config",))
