"""CoolMomentum on parameters sharded over 4 devices, checkpointed with Orbax halfway.

Run by test_cool_momentum.py as
XLA_FLAGS=--xla_force_host_platform_device_count=4 python sharded_cool_momentum.py WORKDIR;
prints one JSON line: the trajectory of the parameters and what the shardings were.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxtl.optim.cool_momentum import cool_momentum

STEPS, RESTART_AT = 40, 17


def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f(W) = ½‖A W − B‖², W of shape (8, 3): a convex least-squares problem."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(16, 8)) / 4, rng.normal(size=(16, 3)), rng.normal(size=(8, 3)))


def main(workdir: str) -> None:
    a, b, w0 = (jnp.asarray(x, jnp.float32) for x in problem())
    mesh = Mesh(np.asarray(jax.devices()), ("model",))
    rows = NamedSharding(mesh, PartitionSpec("model", None))  # 2 rows of W per device
    tx = cool_momentum(0.05, rho_0=0.99, total_steps=STEPS)

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: 0.5 * jnp.sum((a @ p["w"] - b) ** 2))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = {"w": jax.device_put(w0, rows)}
    state = jax.jit(tx.init)(params)
    trajectory, shardings = [], set()
    checkpointer = ocp.StandardCheckpointer()
    for t in range(STEPS):
        if t == RESTART_AT:  # save, then continue from what a fresh process would restore
            checkpointer.save(f"{workdir}/ckpt", {"params": params, "opt_state": state})
            checkpointer.wait_until_finished()
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                                    {"params": params, "opt_state": state})
            restored = checkpointer.restore(f"{workdir}/ckpt", abstract)
            params, state = restored["params"], restored["opt_state"]
            shardings.add(f"restored velocity {tuple(state.velocity['w'].sharding.spec)}")
            restored_count = int(state.count)
        params, state = step(params, state)
        trajectory.append(np.asarray(params["w"]).tolist())
        shardings.add(f"params {tuple(params['w'].sharding.spec)}")
        shardings.add(f"velocity {tuple(state.velocity['w'].sharding.spec)}")
    print(json.dumps({"devices": len(jax.devices()), "trajectory": trajectory,
                      "shardings": sorted(shardings), "restored_count": restored_count,
                      "shards": len(params["w"].addressable_shards)}))


if __name__ == "__main__":
    main(sys.argv[1])
