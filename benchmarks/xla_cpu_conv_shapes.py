"""GFLOP/s of XLA:CPU convolutions (forward, weight gradient, input gradient) at ResNet shapes.

Explains the demo's resolution: on XLA:CPU some 3x3 convolutions of a ResNet18 are tens of
times slower than others of the same work, e.g. the weight gradient on large maps with few
channels (layer1 at >= 112 px input) and any pass on 2x2 maps (layer4 at 64 px input).
`--depthwise` measures the depthwise convolutions of EfficientNet-B0 at 224 px instead (one
filter per channel, `feature_group_count` = channels), which explains its train step on XLA:CPU.

    python benchmarks/xla_cpu_conv_shapes.py > benchmarks/results/xla_cpu_conv_shapes.jsonl
    python benchmarks/xla_cpu_conv_shapes.py --depthwise > benchmarks/results/xla_cpu_depthwise.jsonl
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp

# (batch, height=width, in channels, out channels, stride): ResNet18 3x3 convs.
SHAPES = [(32, 32, 64, 64, 1), (32, 20, 64, 64, 1), (32, 16, 128, 128, 1), (32, 8, 256, 256, 1),
          (32, 4, 512, 512, 1), (32, 3, 512, 512, 1), (32, 2, 512, 512, 1)]
# (batch, height=width of the input, channels, kernel, stride): EfficientNet-B0 depthwise convs
# at 224 px input (timm's blocks 0, 1.0, 2.0, 3.0, 4.0 and 5.0).
DEPTHWISE = [(32, 112, 32, 3, 1), (32, 112, 96, 3, 2), (32, 56, 144, 5, 2), (32, 28, 240, 3, 2),
             (32, 14, 480, 5, 1), (32, 14, 672, 5, 2)]


def seconds(function, *args, repeats: int = 3) -> float:
    jax.block_until_ready(function(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        result = function(*args)
    jax.block_until_ready(result)
    return (time.perf_counter() - start) / repeats


def measure(x, w, stride: int, groups: int, flops: float) -> dict:
    pad = w.shape[0] // 2

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=groups).sum()

    passes = {"forward": jax.jit(conv), "weight_grad": jax.jit(jax.grad(conv, 1)),
              "input_grad": jax.jit(jax.grad(conv, 0))}
    return {f"{name}_gflops": round(flops / seconds(f, x, w) / 1e9, 2)
            for name, f in passes.items()}


def depthwise() -> None:
    for batch, size, channels, kernel, stride in DEPTHWISE:
        x = jnp.ones((batch, size, size, channels))
        w = jnp.ones((kernel, kernel, 1, channels))
        flops = 2 * batch * (size // stride) ** 2 * channels * kernel * kernel
        row = {"batch": batch, "map": size, "channels": channels, "kernel": kernel,
               "stride": stride, "depthwise": True, "device": jax.devices()[0].device_kind}
        print(json.dumps(row | measure(x, w, stride, channels, flops)), flush=True)


def main() -> None:
    if "--depthwise" in sys.argv[1:]:
        depthwise()
        return
    for batch, size, cin, cout, stride in SHAPES:
        x = jnp.ones((batch, size, size, cin))
        w = jnp.ones((3, 3, cin, cout))
        flops = 2 * batch * (size // stride) ** 2 * cin * cout * 9
        row = {"batch": batch, "map": size, "in": cin, "out": cout, "stride": stride,
               "device": jax.devices()[0].device_kind}
        print(json.dumps(row | measure(x, w, stride, 1, flops)), flush=True)


if __name__ == "__main__":
    main()
