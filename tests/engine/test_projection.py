"""A run's steps compiled for a TPU topology without the chips (libtpu, the `tpu` extra; in
this sandbox PYTHONPATH=$PWD:/work/tpusite), and the abstract inputs they are compiled for."""

from __future__ import annotations

import functools
import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from jaxtl.config import validation
from jaxtl.core import chips, tasks
from jaxtl.data.transforms import warp_batch
from jaxtl.engine import build, projection, steps

needs_libtpu = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                  reason="libtpu is not installed (pip install -e '.[tpu]')")


def test_abstract_batches_are_the_pipelines_batches(tmp_path):
    config = tiny_config(tmp_path, "eyepacs")  # crop, flip, rotate: warps on the device
    run, _ = build.build(config, validation.validate(config))
    try:
        real = {"train": next(run.stream.iterator()),
                "eval": next(run.eval_feed(run.splits.val).batches())}
    finally:
        run.close_feeds()
    for name, transform, size in (
            ("train", build.image_transform(config, augment=True, spec=run.spec),
             config.data.batch_size),
            ("eval", run.eval_transform, config.eval.batch_size)):
        abstract = projection.abstract_batch(run.mesh, size, transform, run.splits.task,
                                             train=name == "train", segmentation=False)
        assert sorted(abstract) == sorted(real[name]), name
        for key, array in real[name].items():
            assert (abstract[key].shape, abstract[key].dtype) == (array.shape, array.dtype), key
            assert abstract[key].sharding == array.sharding
    assert "warp" in real["train"]


def test_the_runs_own_steps_compile_for_abstract_inputs_on_this_machine(tmp_path):
    """The path a TPU plan takes, on the CPU mesh: nothing placed, figures read."""
    config = tiny_config(tmp_path, "eyepacs", {"model.arch": "small_cnn",
                                               "data.resolution": 16})
    spec = validation.validate(config)
    task = tasks.multiclass(["a", "b", "c"])
    mesh = steps.make_mesh(jax.devices()[:1])
    transform = build.image_transform(config, augment=True, spec=spec)
    built = build.build_steps(config, task, mesh=mesh, train_transform=transform,
                              eval_transform=transform, steps_per_epoch=10, total_steps=20,
                              weights=None, abstract=True)
    assert steps.is_abstract(built.state)
    figures = projection.compile_figures(
        built.train_step(0), (built.state, projection.abstract_batch(
            mesh, 8, transform, task, train=True, segmentation=False)), 1, 8)
    params = sum(leaf.size for leaf in jax.tree.leaves(built.state.params))
    assert figures.argument_bytes >= 4 * params * 2  # parameters and momentum at least
    assert figures.flops > 0 and figures.bytes_accessed > 0 and figures.compile_seconds > 0


@pytest.mark.parametrize("last_true", [0, 1, 2, 3, 7, 8, 100, 4095, 4096])
def test_largest_true_finds_the_boundary_as_a_scan_would(last_true):
    calls = []

    def predicate(n):
        calls.append(n)
        return n <= last_true

    assert projection.largest_true(predicate, 4096) == max(
        (n for n in range(1, 4097) if predicate(n)), default=0)
    assert len(calls) - 4096 <= 2 * math.log2(4096) + 2  # the search, before the scan


def test_all_reduce_and_float32_contraction_counts_of_hlo_text():
    lines = [
        "  %a = bf16[8,4]{1,0} parameter(0)",
        "  %b = bf16[4,2]{1,0} parameter(1)",
        "  %c = f32[4,2]{1,0} parameter(2)",
        "  %dot.1 = bf16[8,2]{1,0} dot(%a, %b), lhs_contracting_dims={1}",
        "  %convolution.2 = f32[8,2]{1,0} convolution(%a, %b), dim_labels=bf_io->bf",
        "  %dot.3 = bf16[8,2]{1,0} dot(%a, %c), lhs_contracting_dims={1}",
        "  %all-reduce.4 = (f32[64]{0}, f32[64]{0}) all-reduce(%x, %y), channel_id=2",
        "  %all-reduce-start.5 = f32[8]{0} all-reduce-start(%z), channel_id=3",
        "  %all-reduce-done.5 = f32[8]{0} all-reduce-done(%all-reduce-start.5)",
        "  %g = f32[64]{0} get-tuple-element(%all-reduce.4), index=0"]
    hlo = "\n".join(lines)
    assert projection.all_reduces(hlo) == 2
    found = projection.float32_contractions(hlo)
    assert [line.split(" = ")[0] for line in found] == ["%convolution.2", "%dot.3"]


# --- Compiled for TPU topologies (libtpu) ---------------------------------------------------
RESOLUTION, PER_CHIP, CLASSES = 64, 16, 5


def resnet18_train_conv_flops(side: int) -> float:
    """ResNet-18's convolutions in a train step per image: 3x the forward (input and weight
    gradients), counting only kernel taps that fall inside the padded input's real pixels, as
    XLA counts them."""
    def taps(size, kernel, stride):
        pad = (kernel - 1) // 2
        out = (size + 2 * pad - kernel) // stride + 1
        per_axis = sum(sum(0 <= o * stride - pad + t < size for t in range(kernel))
                       for o in range(out))
        return out, per_axis ** 2

    size, macs = side, 0
    size, count = taps(size, 7, 2)
    macs += count * 3 * 64
    size, channels = size // 2, 64  # max pool
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            step = stride if block == 0 else 1
            out, first = taps(size, 3, step)
            _, second = taps(out, 3, 1)
            macs += first * channels * width + second * width * width
            if step != 1 or channels != width:
                macs += taps(size, 1, step)[1] * channels * width
            size, channels = out, width
    return 3 * 2 * macs


def training_setup(folder, arch: str):
    """The tiny EyePACS config of `arch` at RESOLUTION px in bfloat16, and its training
    transform (crop, flip, rotations up to 180 degrees: warps on the device)."""
    config = tiny_config(folder, "eyepacs", {
        "model.arch": arch, "data.resolution": RESOLUTION, "model.dtype": "bfloat16"})
    return config, build.image_transform(config, augment=True,
                                         spec=validation.validate(config))


def compiled_train_step(topology_name: str, arch: str, folder):
    """(topology, devices per chip, abstract state, abstract batch, figures) of `arch`'s
    bfloat16 train step at RESOLUTION px, with EyePACS's augmentation, compiled for the
    topology's chips without them."""
    topology = chips.parse_topology(topology_name)
    config, transform = training_setup(folder, arch)
    task = tasks.multiclass([str(c) for c in range(CLASSES)])
    devices = projection.topology_devices(topology)
    mesh = steps.make_mesh(devices)
    per_chip = projection.devices_per_chip(devices)
    built = build.build_steps(config, task, mesh=mesh, train_transform=transform,
                              eval_transform=transform, steps_per_epoch=10, total_steps=100,
                              weights=None, abstract=True)
    batch = projection.abstract_batch(mesh, PER_CHIP * topology.chips, transform, task,
                                      train=True, segmentation=False)
    # XLA's least effort on the step's speed halves the compile (ResNet-18 on v5e: 40 -> 20 s,
    # measured); the FLOPs, the contractions' types and the all-reduces stay the step's, which
    # is what these tests check (jaxtl.plan projects at the default effort)
    effort = jax.config.jax_exec_time_optimization_effort
    jax.config.update("jax_exec_time_optimization_effort", -1.0)
    try:
        figures = projection.compile_figures(built.train_step(0), (built.state, batch),
                                             per_chip, PER_CHIP)
    finally:
        jax.config.update("jax_exec_time_optimization_effort", effort)
    return topology, per_chip, built.state, batch, figures


# Each compile for a topology costs tens of seconds (more than the rest of this module): ResNet-18
# on v5e (one device a chip), the tiny ViT on v4 (two TensorCores a chip, so every per-chip
# figure is twice the per-device one), each compiled once for all the tests below.
@pytest.fixture(scope="module")
def compiled_resnet18(tmp_path_factory):
    return compiled_train_step("v5e:2x4", "resnet18", tmp_path_factory.mktemp("plan"))


@pytest.fixture(scope="module")
def compiled_vit(tmp_path_factory):
    return compiled_train_step("v4:2x2x1", "test_vit", tmp_path_factory.mktemp("plan"))


@needs_libtpu
@pytest.mark.parametrize(("compiled", "chip", "devices_a_chip"),
                         [("compiled_resnet18", "v5e", 1), ("compiled_vit", "v4", 2)])
def test_the_train_step_compiles_for_the_topologys_chips(request, compiled, chip,
                                                          devices_a_chip):
    topology, per_chip, state, batch, figures = request.getfixturevalue(compiled)
    assert topology.chip.name == chip and per_chip == devices_a_chip
    assert figures.images == PER_CHIP and figures.hlo
    # what fits any model's step, per chip (ResNet-18's exact sizes: the test below)
    state_bytes = per_chip * projection.per_device_bytes(state)
    batch_bytes = per_chip * projection.per_device_bytes(batch)
    assert batch_bytes == PER_CHIP * (RESOLUTION ** 2 * 3 + 4 + 1 + 6 * 4)  # uint8, label,
    # valid, warp
    assert state_bytes + batch_bytes <= figures.argument_bytes
    assert figures.alias_bytes >= 0.95 * state_bytes  # the old state is donated
    assert figures.argument_bytes + figures.temp_bytes <= figures.memory_bytes
    assert figures.memory_bytes < 0.1 * topology.chip.hbm_bytes


@needs_libtpu
def test_memory_per_chip_holds_the_state_and_the_batch_and_fits(compiled_resnet18):
    topology, per_chip, state, batch, figures = compiled_resnet18
    # ResNet-18 with a 5-class head: timm's 11,689,512 parameters less 995 classes x 513
    params = 11_689_512 - (1000 - CLASSES) * 513
    bn_channels = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512  # stem, blocks, downsamples
    assert projection.per_device_bytes(state.params) == 4 * params
    assert projection.per_device_bytes(state.batch_stats) == 4 * 2 * bn_channels
    # SGD momentum: one float32 trace per parameter, and the schedule's int32 step count
    assert projection.per_device_bytes(state.opt_state) == 4 * params + 4
    state_bytes = per_chip * projection.per_device_bytes(state)
    batch_bytes = per_chip * projection.per_device_bytes(batch)
    assert batch_bytes == PER_CHIP * (RESOLUTION ** 2 * 3 + 4 + 1 + 6 * 4)  # uint8, label,
    # valid, warp; arguments as the chip lays them out (small arrays padded to tiles)
    assert state_bytes + batch_bytes <= figures.argument_bytes <= 1.1 * (state_bytes
                                                                         + batch_bytes)
    assert figures.alias_bytes >= 0.95 * state_bytes  # the old state is donated
    assert figures.argument_bytes + figures.temp_bytes <= figures.memory_bytes
    assert figures.memory_bytes < 0.1 * topology.chip.hbm_bytes


@needs_libtpu
def test_flops_per_image_are_resnet18s_convolutions_and_the_warps(compiled_resnet18,
                                                                  tmp_path):
    _, per_chip, _, batch, figures = compiled_resnet18
    # On TPUs the warp samples the canvases with matmuls and shears (jaxtl.data.shear_warp),
    # which count as FLOPs too: the warp compiled alone for the same batch.
    _, transform = training_setup(tmp_path, "resnet18")
    warp = projection.compile_figures(
        jax.jit(functools.partial(warp_batch, max_rotation=transform.max_rotation)),
        (batch["image"], batch["warp"]), per_chip, PER_CHIP)
    assert warp.flops > 0
    assert figures.flops / figures.images == pytest.approx(
        resnet18_train_conv_flops(RESOLUTION) + warp.flops / warp.images, rel=0.03)


@needs_libtpu
def test_flops_per_image_count_every_device_of_the_chip():
    """The compiler's FLOPs are per device: a v4 chip's two TensorCores each take half the
    chip's images, so per image the chip does what one device does (here a matmul of each
    image's 256 features, 2 x 256 x 128 FLOPs, as ResNet-18's convolutions above on v5e)."""
    for name in ("v5e:2x4", "v4:2x2x1"):
        topology = chips.parse_topology(name)
        devices = projection.topology_devices(topology)
        mesh = steps.make_mesh(devices)
        images = jax.ShapeDtypeStruct((PER_CHIP * topology.chips, 256), jnp.bfloat16,
                                      sharding=jax.sharding.NamedSharding(
                                          mesh, jax.sharding.PartitionSpec("data")))
        weights = jax.ShapeDtypeStruct((256, 128), jnp.bfloat16,
                                       sharding=steps.replicated(mesh))
        figures = projection.compile_figures(jax.jit(jnp.matmul), (images, weights),
                                             projection.devices_per_chip(devices), PER_CHIP)
        assert figures.flops / figures.images == 2 * 256 * 128, name


@needs_libtpu
def test_no_convolution_or_matmul_runs_in_float32_but_the_float32_head(compiled_resnet18):
    *_, figures = compiled_resnet18
    contractions = [line for line in figures.hlo.splitlines()
                    if " convolution(" in line or " dot(" in line]
    assert len(contractions) >= 3 * 20  # forward, input and weight gradients of 20 layers
    float32 = projection.float32_contractions(figures.hlo)
    # the head takes the pooled float32 features (models/taps.py PRE_LOGITS): its forward
    # and its two gradients
    assert len(float32) == 3
    assert all("/head/" in line for line in float32), float32


@needs_libtpu
def test_all_reduces_are_batchnorms_global_statistics_and_one_for_the_gradients(
        compiled_resnet18):
    *_, figures = compiled_resnet18
    # BatchNorm over the global batch: one all-reduce per normalisation on the main path
    # (the stem and two in each of 8 blocks; a downsample's BatchNorm runs beside its block's
    # second one and shares its all-reduce), forward and backward; then the gradients', and
    # the loss and metrics'.
    main_path = 1 + 2 * 8
    assert figures.all_reduces == 2 * main_path + 1 + 1


@needs_libtpu
def test_a_float32_matmul_is_found_and_a_bfloat16_one_is_not():
    devices = projection.topology_devices(chips.parse_topology("v5e:2x4"))
    mesh = steps.make_mesh(devices)
    sharding = steps.replicated(mesh)
    found = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        shape = jax.ShapeDtypeStruct((256, 256), dtype, sharding=sharding)
        compiled = jax.jit(jnp.matmul).lower(shape, shape).compile()
        found[np.dtype(dtype).name] = projection.float32_contractions(compiled.as_text())
    assert len(found["float32"]) == 1 and found["bfloat16"] == []


@needs_libtpu
def test_a_tiny_vits_step_compiles_in_bfloat16_with_no_collective_per_layer(compiled_vit):
    *_, figures = compiled_vit
    # float32 contractions: the head's (forward and its two gradients) and the resampling of
    # the float32 position embeddings to this resolution's patch grid (models/vit.py), forward
    # and backward; every matmul of the blocks runs in bfloat16
    float32 = projection.float32_contractions(figures.hlo)
    head = [line for line in float32 if "/head/" in line]
    assert len(head) == 3
    assert all("_resize" in line for line in float32 if line not in head), float32
    # no BatchNorm: no all-reduce per layer (ResNet-18 above: 36), only the loss and metrics'
    # and the gradients' (which XLA:TPU combines into one or a few)
    assert 2 <= figures.all_reduces <= 4, figures.all_reduces
