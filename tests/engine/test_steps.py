"""The sharded train step: one device and four devices compute the same run."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from conftest import xla_flags

SCRIPT = pathlib.Path(__file__).with_name("sharded_losses.py")


def losses_on_one_and_four_devices() -> dict:
    env = dict(os.environ, XLA_FLAGS=xla_flags(4),
               JAX_PLATFORMS="cpu", PYTHONPATH=str(SCRIPT.parent.parent))  # this checkout
    result = subprocess.run([sys.executable, str(SCRIPT)], check=False, env=env,
                            capture_output=True, text=True, timeout=300,
                            cwd=SCRIPT.parent.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_one_and_four_devices_give_the_same_losses():
    losses = losses_on_one_and_four_devices()
    one, four = losses["one"], losses["four"]
    assert losses["process_devices"] == 4 and (one["devices"], four["devices"]) == (1, 4)
    # the batch really is split over the four devices, and kept whole on one
    assert (one["batch_shards"], four["batch_shards"]) == (1, 4)
    assert four["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert four["bn_mean"] == pytest.approx(one["bn_mean"], rel=1e-4)  # global-batch BN stats
    assert one["losses"][0] != pytest.approx(one["losses"][-1])  # and training moves


def test_abstract_state_is_the_real_states_shapes_dtypes_and_shardings():
    import jax
    import numpy as np
    import optax

    from jaxtl import models
    from jaxtl.engine import steps

    model = models.create_model("small_cnn", num_outputs=3)
    tx = optax.sgd(0.1, momentum=0.9)
    mesh = steps.make_mesh(jax.devices()[:1])
    real = steps.init_state(model, tx, seed=4, image_shape=(16, 16, 3), mesh=mesh)
    abstract = steps.init_state(model, tx, seed=4, image_shape=(16, 16, 3), mesh=mesh,
                                abstract=True)
    assert steps.is_abstract(abstract) and not steps.is_abstract(real)
    assert jax.tree.structure(abstract) == jax.tree.structure(real)
    for shape, array in zip(jax.tree.leaves(abstract), jax.tree.leaves(real)):
        assert isinstance(shape, jax.ShapeDtypeStruct)
        assert (shape.shape, shape.dtype, shape.sharding) == (array.shape, array.dtype,
                                                              array.sharding)
    # the real state's values: step 0, the third key of the seed, a fresh optimizer state
    assert int(real.step) == 0
    np.testing.assert_array_equal(real.rng, jax.random.split(jax.random.PRNGKey(4), 3)[2])
    for fresh, kept in zip(jax.tree.leaves(tx.init(real.params)),
                           jax.tree.leaves(real.opt_state)):
        np.testing.assert_array_equal(fresh, kept)
