"""Sweeps: grids of runs over a base config, run as subprocesses, gathered in one table.

    python -m jaxtl.sweep --config configs/sweeps/demo.py --workdir runs/demo

Sweep files (configs/sweeps/*.py) define `get_sweep(arg) -> Sweep` with `axis` and `product`.
"""

from jaxtl.sweep.grid import Sweep, SweepError, axis, product

__all__ = ["Sweep", "SweepError", "axis", "product"]
