"""Classifier heads put on top of pooled backbone features.

A head computes in float32 whatever the backbone's compute dtype: with a bfloat16 backbone the
pooled features arrive as float32 and the logits are never rounded to bfloat16's 8-bit
mantissa before the loss, the scores and the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

HEADS = ("linear", "mlp_128", "mlp_512_256_128_64")

_HIDDEN: dict[str, tuple[int, ...]] = {
    "linear": (),
    "mlp_128": (128,),
    "mlp_512_256_128_64": (512, 256, 128, 64),
}


class Head(nn.Module):
    """Dropout, then (Dense `hidden_i` + ReLU + Dropout) per hidden width, then Dense `fc`.

    Dropout is only active with `train=True` (needs rngs={"dropout": key}). Float32 throughout.
    `init_std`: `fc`'s kernel starts truncated normal with this standard deviation (MAE's and
    RETFound's fine-tuning: 2e-5, so the new head starts near zero); 0 keeps Flax's default
    (LeCun normal). The bias starts at zero either way.
    """

    num_outputs: int
    hidden: Sequence[int] = ()
    dropout: float = 0.0
    init_std: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        x = x.astype(jnp.float32)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(width, dtype=jnp.float32, param_dtype=jnp.float32, name=f"hidden_{i}")(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
        kernel_init = (nn.initializers.truncated_normal(self.init_std) if self.init_std > 0
                       else nn.linear.default_kernel_init)
        x = nn.Dense(self.num_outputs, dtype=jnp.float32, param_dtype=jnp.float32,
                     kernel_init=kernel_init, name="fc")(x)
        return x.astype(jnp.float32)


def make_head(name: str, *, num_outputs: int, dropout: float = 0.0,
              init_std: float = 0.0) -> Head:
    """Builds the head called `name` (one of HEADS); `init_std`: see `Head`."""
    if name not in _HIDDEN:
        raise ValueError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return Head(num_outputs, _HIDDEN[name], dropout, init_std)
