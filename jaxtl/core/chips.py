"""TPU chip kinds: memory, peak bfloat16 FLOP/s and memory bandwidth per chip.

The one home of these figures; docs/tpu.md shows them with their public sources (a test
checks that the page and this table agree). A topology name is `<chip>:<grid>` as libtpu
names it (`v5e:2x4`, `v4:2x2x1`), and its chips are a product of the grid's sides.
"""

from __future__ import annotations

import dataclasses
import math

from jaxtl.core.errors import UserError

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class ChipKind:
    name: str  # as topology names start: v4, v5e, v5p, v6e
    device_kind: str  # what jax.Device.device_kind says for it
    hbm_bytes: int  # high-bandwidth memory per chip
    peak_bf16_flops: float  # per second, dense bfloat16 matmul
    hbm_bytes_per_second: float
    source: str  # the public page these figures come from


CHIPS = {chip.name: chip for chip in (
    ChipKind("v4", "TPU v4", 32 * GIB, 275e12, 1200e9,
             "https://cloud.google.com/tpu/docs/v4"),
    ChipKind("v5e", "TPU v5 lite", 16 * GIB, 197e12, 819e9,
             "https://cloud.google.com/tpu/docs/v5e"),
    ChipKind("v5p", "TPU v5", 95 * GIB, 459e12, 2765e9,
             "https://cloud.google.com/tpu/docs/v5p"),
    ChipKind("v6e", "TPU v6 lite", 32 * GIB, 918e12, 1640e9,
             "https://cloud.google.com/tpu/docs/v6e"),
)}


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str  # e.g. v5e:2x4
    chip: ChipKind
    chips: int


def parse_topology(name: str) -> Topology:
    """`v5e:2x4` -> the v5e chip, 8 chips; a one-line UserError for anything else."""
    kind, sep, grid = name.partition(":")
    sides = grid.split("x") if sep else []
    if kind not in CHIPS or not sides or not all(side.isdigit() and int(side) > 0
                                                 for side in sides):
        raise UserError(f"TPU topology {name!r}: expected <chip>:<grid> with a chip among "
                        f"{', '.join(CHIPS)} and a grid such as 2x4 or 2x2x1 (e.g. v5e:2x4)")
    return Topology(name, CHIPS[kind], math.prod(int(side) for side in sides))


def markdown_table() -> str:
    """The chip kinds with their figures and sources (docs/tpu.md includes it)."""
    lines = ["| Chip | JAX device kind | HBM per chip | Peak bf16 per chip | HBM bandwidth | "
             "Source |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {chip.name} | {chip.device_kind} | {chip.hbm_bytes / GIB:g} GiB | "
              f"{chip.peak_bf16_flops / 1e12:g} TFLOP/s | "
              f"{chip.hbm_bytes_per_second / 1e9:g} GB/s | <{chip.source}> |"
              for chip in CHIPS.values()]
    return "\n".join(lines) + "\n"
