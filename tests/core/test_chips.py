from __future__ import annotations

import pathlib

import pytest

from jaxtl.core import chips
from jaxtl.core.errors import UserError

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name, chip, count", [("v5e:2x4", "v5e", 8), ("v4:2x2x1", "v4", 4),
                                               ("v5p:2x2x1", "v5p", 4), ("v6e:4x4", "v6e", 16)])
def test_topology_names_give_the_chip_and_the_product_of_the_grid(name, chip, count):
    topology = chips.parse_topology(name)
    assert (topology.chip.name, topology.chips, topology.name) == (chip, count, name)


@pytest.mark.parametrize("name", ["v5e", "v5e:", "v3:2x2", "v5e:2x0", "v5e:2xa", "tpu-v5e-8"])
def test_malformed_topologies_are_one_line_errors_with_an_example(name):
    with pytest.raises(UserError, match=r"expected <chip>:<grid> .*e\.g\. v5e:2x4") as raised:
        chips.parse_topology(name)
    assert "\n" not in str(raised.value)


def test_chip_figures_are_in_plausible_units_and_have_a_public_source():
    for chip in chips.CHIPS.values():
        assert 8 * chips.GIB <= chip.hbm_bytes <= 192 * chips.GIB
        assert 100e12 <= chip.peak_bf16_flops <= 5000e12  # FLOP/s, not TFLOP/s
        assert 500e9 <= chip.hbm_bytes_per_second <= 10e12
        assert chip.source.startswith("https://cloud.google.com/tpu/docs/")


def test_the_docs_table_is_generated_from_the_chip_kinds():
    table = chips.markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| v")]
    assert [row.split("|")[1].strip() for row in rows] == list(chips.CHIPS)
    v5e = next(row for row in rows if row.startswith("| v5e "))
    assert "16 GiB" in v5e and "197 TFLOP/s" in v5e and "819 GB/s" in v5e
    assert "_generated/tpu_chips.md" in (DOCS / "tpu.md").read_text()
    assert "tpu_chips.md" in (DOCS / "conf.py").read_text()
