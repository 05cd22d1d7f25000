"""The training warp alone, compiled for a TPU slice that is not here (deviceless XLA:TPU), and
the bytes each way of computing it accesses per chip: which way a quarter turn is cheapest.

    PYTHONPATH=$PWD:/path/to/libtpu-site python benchmarks/warp_bytes.py \
        [--topology v5e:2x4] [--per_chip 128] [--resolution 224] [--out FILE]

Ways (uint8 canvases and (2, 3) warps sharded over the chips, as the train step gets them):
  * shears_10: jaxtl.data.shear_warp for rotations up to 10 degrees (no quarter turns);
  * quarter_canvas_180: shear_warp for rotations up to 180 degrees: the quarter turn chosen per
    image where the uint8 canvas becomes planes (the transposed planes or not, signs in the
    resampling matrices), the residual up to 45 degrees through the shears (what TPUs run);
  * quarter_output_180: the residual warp through the shears up to 45 degrees, then the
    quarter turn as a select of the output's four rot90s (the alternative; its pixels are not
    checked, only its bytes count here);
  * gather: bilinear sampling with gathers from channel planes (what other affine maps use).
Per chip: bytes accessed and FLOPs from `compiled.cost_analysis()`, the roofline time at the
chip's HBM bandwidth. Projections from the compiler's counts, not measurements on a TPU.
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxtl.core import chips
from jaxtl.data import shear_warp
from jaxtl.data.transforms import bilinear_warp
from jaxtl.engine import projection

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # run as a script or with -m
from results_line import report


def quarter_on_output(images: Any, warps: Any) -> Any:
    """The residual shears (bytes as for any warp), then each image's quarter turn as a select
    of its output's four rot90s."""
    out = shear_warp.shear_warp(images, warps, max_degrees=shear_warp.MAX_DEGREES,
                                dtype=jnp.bfloat16)
    _, _, cos, sin, _ = jax.vmap(shear_warp.decompose)(warps)
    cos_q, sin_q, _, _ = shear_warp.quarter_turn(cos, sin)
    quarter = (jnp.round(jnp.arctan2(sin_q, cos_q) / (np.pi / 2)).astype(jnp.int32) % 4)
    turned = out
    for k in (1, 2, 3):
        turned = jnp.where((quarter == k)[:, None, None, None],
                           jnp.rot90(out, k, axes=(1, 2)), turned)
    return turned


WAYS = {
    "shears_10": functools.partial(shear_warp.shear_warp, max_degrees=10.0, dtype=jnp.bfloat16),
    "quarter_canvas_180": functools.partial(shear_warp.shear_warp, max_degrees=180.0,
                                            dtype=jnp.bfloat16),
    "quarter_output_180": quarter_on_output,
    "gather": functools.partial(bilinear_warp, channel_planes=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topology", default="v5e:2x4")
    parser.add_argument("--per_chip", type=int, default=128)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    topology = chips.parse_topology(args.topology)
    chip = topology.chip
    mesh = Mesh(np.asarray(projection.topology_devices(topology)), ("data",))
    data = NamedSharding(mesh, PartitionSpec("data"))
    batch = args.per_chip * mesh.size
    side = args.resolution
    images = jax.ShapeDtypeStruct((batch, side, side, 3), jnp.uint8, sharding=data)
    warps = jax.ShapeDtypeStruct((batch, 2, 3), jnp.float32, sharding=data)
    for name in args.ways.split(","):
        start = time.perf_counter()
        compiled = jax.jit(WAYS[name], in_shardings=(data, data), out_shardings=data).lower(
            images, warps).compile()
        seconds = time.perf_counter() - start
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        memory = compiled.memory_analysis()
        accessed = float(cost["bytes accessed"])
        report({"benchmark": "warp_bytes", "way": name, "topology": args.topology,
                "per_chip": args.per_chip, "resolution": side, "jax": jax.__version__,
                "compile_seconds": round(seconds, 1),
                "bytes_accessed_gb": round(accessed / 1e9, 3),
                "gflop": round(float(cost["flops"]) / 1e9, 1),
                "temp_gb": round(memory.temp_size_in_bytes / 1e9, 3),
                "roofline_ms": round(1e3 * max(accessed / chip.hbm_bytes_per_second,
                                               float(cost["flops"]) / chip.peak_bf16_flops), 2)},
               args.out)


if __name__ == "__main__":
    main()
