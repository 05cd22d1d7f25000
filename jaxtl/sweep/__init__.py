"""Sweeps: grids of runs over a base config, run as subprocesses, gathered in one table.

    python -m jaxtl.sweep --config configs/sweeps/demo.py --workdir runs/demo

Sweep files (configs/sweeps/*.py) define `get_sweep(arg) -> Sweep` with `axis`, `seeds` and
`product` (`named_paths` reads a sweep file's `name=path,...` argument).
"""

from jaxtl.sweep.grid import SEED_KEYS, Sweep, SweepError, axis, named_paths, product, seeds

__all__ = ["SEED_KEYS", "Sweep", "SweepError", "axis", "named_paths", "product", "seeds"]
