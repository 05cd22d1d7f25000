"""`python -m jaxtl.commands.settings`: every key of a config once, with its value, what it
allows and its help, by section; as plain text or a Markdown table per section."""

from __future__ import annotations

import re

import pytest
from conftest import config_of
from programs import run_programs

from jaxtl.commands import settings as listing
from jaxtl.config.base import flatten, settings_of
from jaxtl.core.errors import UserError
from jaxtl.data import registry

KEY_LINE = re.compile(r"^  (\S+) = (.*)$")


def listed_keys(text: str) -> list[str]:
    return [match.group(1) for line in text.splitlines() if (match := KEY_LINE.match(line))]


@pytest.mark.parametrize("name", ["eyepacs", "consep_seg", "chexpert", "csv"])
def test_text_lists_every_key_once_with_value_and_help(name):
    config = config_of(name)
    text = listing.as_text(listing.by_section(listing.rows(config)))
    leaves = dict(flatten(config))
    keys = listed_keys(text)
    assert sorted(keys) == sorted(leaves) and len(keys) == len(set(keys))
    settings = settings_of(registry.get(config.dataset))
    lines = text.splitlines()
    for key in leaves:
        at = lines.index(f"  {key} = {leaves[key]!r}")
        end = next((i for i in range(at + 1, len(lines)) if not lines[i].startswith(" " * 6)),
                   len(lines))
        block = " ".join(line.strip() for line in lines[at + 1:end])
        assert " ".join(settings[key].help.split()) in block, key


def test_sections_are_headed_in_declaration_order():
    text = listing.as_text(listing.by_section(listing.rows(config_of("eyepacs"))))
    headings = [line for line in text.splitlines() if line.startswith("[")]
    assert headings == ["[dataset]", "[data]", "[model]", "[optim]", "[finetune]", "[train]",
                        "[lora]", "[eval]", "[probe]", "[seg]", "[demo]", "[eyepacs]"]


def test_one_section_and_its_allowed_values():
    config = config_of("eyepacs")
    config.optim.lr = 0.5
    text = listing.as_text(listing.by_section(listing.rows(config), "optim"))
    assert set(listed_keys(text)) == {key for key, _ in flatten(config.optim, "optim.")}
    assert "  optim.lr = 0.5\n      allowed: a number in 1e-08 .. 100.0\n" in text
    assert "allowed: sgd, adam, adamw, cool_momentum" in text
    with pytest.raises(UserError, match="--section optm: this config has no such section"):
        listing.by_section(listing.rows(config), "optm")


def test_markdown_is_a_table_per_section():
    config = config_of("consep_seg")
    grouped = listing.by_section(listing.rows(config))
    markdown = listing.as_markdown(grouped)
    tables = markdown.split("### ")[1:]
    assert [table.splitlines()[0] for table in tables] == list(grouped)
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(rows) == len(dict(flatten(config)))
    assert all(line.count(" | ") == 3 for line in rows)  # no cell breaks the table
    assert ("| `consep_seg.crops_per_tile` | `8` | an integer in 1 .. 10000 | random crops of "
            "each training tile per epoch |") in markdown


def test_the_program(tmp_path):
    runs = run_programs([
        ("jaxtl.commands.settings", ["--config", "configs/eyepacs.py", "--section", "eyepacs",
                                     "--config.eyepacs.preprocess=graham"]),
        ("jaxtl.commands.settings", ["--config", "configs/eyepacs.py", "--markdown"]),
        ("jaxtl.commands.settings", ["--config", "configs/eyepacs.py", "--section", "optm"]),
    ])
    assert [run.returncode for run in runs] == [0, 0, 2]
    assert not any(run.traceback for run in runs)
    assert listed_keys(runs[0].stdout) == ["eyepacs.preprocess", "eyepacs.test_set"]
    assert "  eyepacs.preprocess = 'graham'\n      allowed: none, graham\n" in runs[0].stdout
    assert runs[1].stdout.startswith("### dataset\n") and "### optim\n" in runs[1].stdout
    assert "error: --section optm: this config has no such section" in runs[2].stderr
