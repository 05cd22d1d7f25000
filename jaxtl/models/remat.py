"""Rematerialisation (gradient checkpointing) of a family's blocks: `model.remat`.

A rematerialised block keeps only its input for the backward pass and recomputes its
activations there, so a deep model's training memory holds one block's activations at a time
instead of all of them, for about one more forward pass of compute. The variables (names and
shapes) and the numbers (outputs and gradients) are those of the plain block.
"""

from __future__ import annotations

import flax.linen as nn

# The blocks' `__call__(self, x, train)`: `train` (argument 2, counting self) is a Python bool
# that selects dropout and BatchNorm modes, so it stays static under jax.checkpoint.
TRAIN_ARGUMENT = 2


def remat_block(block: type[nn.Module]) -> type[nn.Module]:
    """`block`, a module class called as `block(...)(x, train)`, rematerialised."""
    return nn.remat(block, static_argnums=(TRAIN_ARGUMENT,))
