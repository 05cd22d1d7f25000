"""Classifier heads put on top of pooled backbone features."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxtl.models.layers import Dtype

HEADS = ("linear", "mlp_128", "mlp_512_256_128_64")

_HIDDEN: dict[str, tuple[int, ...]] = {
    "linear": (),
    "mlp_128": (128,),
    "mlp_512_256_128_64": (512, 256, 128, 64),
}


class Head(nn.Module):
    """Dropout, then (Dense `hidden_i` + ReLU + Dropout) per hidden width, then Dense `fc`.

    Dropout is only active with `train=True` (needs rngs={"dropout": key}).
    """

    num_outputs: int
    hidden: Sequence[int] = ()
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(width, dtype=self.dtype, param_dtype=jnp.float32, name=f"hidden_{i}")(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
        x = nn.Dense(self.num_outputs, dtype=self.dtype, param_dtype=jnp.float32, name="fc")(x)
        return x.astype(jnp.float32)


def make_head(name: str, *, num_outputs: int, dropout: float = 0.0, dtype: Dtype = jnp.float32) -> Head:
    """Builds the head called `name` (one of HEADS)."""
    if name not in _HIDDEN:
        raise ValueError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return Head(num_outputs, _HIDDEN[name], dropout, dtype)
