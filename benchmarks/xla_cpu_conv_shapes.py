"""GFLOP/s of XLA:CPU convolutions (forward, weight gradient, input gradient) at ResNet shapes.

Explains the demo's resolution: on XLA:CPU some 3x3 convolutions of a ResNet18 are tens of
times slower than others of the same work, e.g. the weight gradient on large maps with few
channels (layer1 at >= 112 px input) and any pass on 2x2 maps (layer4 at 64 px input).

    python benchmarks/xla_cpu_conv_shapes.py > benchmarks/results/xla_cpu_conv_shapes.jsonl
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp

# (batch, height=width, in channels, out channels, stride): ResNet18 3x3 convs.
SHAPES = [(32, 32, 64, 64, 1), (32, 20, 64, 64, 1), (32, 16, 128, 128, 1), (32, 8, 256, 256, 1),
          (32, 4, 512, 512, 1), (32, 3, 512, 512, 1), (32, 2, 512, 512, 1)]


def seconds(function, *args, repeats: int = 3) -> float:
    jax.block_until_ready(function(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        result = function(*args)
    jax.block_until_ready(result)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    for batch, size, cin, cout, stride in SHAPES:
        x = jnp.ones((batch, size, size, cin))
        w = jnp.ones((3, 3, cin, cout))

        def conv(x, w, stride=stride):
            return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                                dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()

        flops = 2 * batch * (size // stride) ** 2 * cin * cout * 9
        passes = {"forward": jax.jit(conv), "weight_grad": jax.jit(jax.grad(conv, 1)),
                  "input_grad": jax.jit(jax.grad(conv, 0))}
        row = {"batch": batch, "map": size, "in": cin, "out": cout, "stride": stride,
               "device": jax.devices()[0].device_kind}
        row |= {f"{name}_gflops": round(flops / seconds(f, x, w) / 1e9, 1)
                for name, f in passes.items()}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
