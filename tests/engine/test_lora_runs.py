"""A LoRA run end to end (one tiny ViT trained on the EyePACS demo from a base written here):
what it reports training, what its checkpoint holds, loading it merges the adapters (checked
against the merge written out with NumPy), evaluation reproduces its own test metrics, export
round-trips through the timm layout, and a changed base is refused. Without training: export of
a run without adapters, and the settings refused before a run starts."""

from __future__ import annotations

import hashlib
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import stopped_at_first_checkpoint_then_resumed, tiny_config
from flax import traverse_util

from jaxtl.commands import evaluate
from jaxtl.commands import export as export_command
from jaxtl.config import validation
from jaxtl.conversion import timm as timm_conversion
from jaxtl.core import tasks
from jaxtl.core.errors import ConfigError, TransferError
from jaxtl.engine import build, steps, transfer
from jaxtl.engine.steps import TrainState
from jaxtl.models import create_model, lora
from jaxtl.training import loop as train
from jaxtl.workdir import checkpoints, pretrained
from jaxtl.workdir import files as rundir

ARCH, EMBED, DEPTH, CLASSES = "test_vit", 64, 6, 5  # test_vit: 64 wide, 6 blocks; EyePACS: 5
RANK = 4


def write_base(folder: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """A converted-checkpoint folder of random test_vit weights with a 7-class head."""
    model = create_model(ARCH, num_outputs=7)
    variables = model.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)), train=False)
    info = pretrained.PretrainedInfo(arch=ARCH, num_classes=7, in_channels=3, resolution=32,
                                     mean=(0.5,) * 3, std=(0.25,) * 3, source={"kind": "test"})
    return pretrained.save_pretrained(folder, info, variables)


def lora_config(folder: pathlib.Path, base: pathlib.Path):
    """One epoch of 8 steps, a checkpoint every 2: the stopped run resumes mid-epoch."""
    return tiny_config(folder, "eyepacs", {
        "model.arch": ARCH, "demo.arch": ARCH, "model.init": str(base),
        "train.adapter": "lora", "lora.rank": RANK, "lora.alpha": 8.0,
        "optim.name": "adamw", "optim.lr": 1e-3, "demo.epochs": 1,
        "train.checkpoint_every_steps": 2})


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path, dict]:
    tmp = tmp_path_factory.mktemp("lora")
    base = write_base(tmp / "base")
    results = train.train_and_evaluate(lora_config(tmp, base), tmp / "run",
                                       set_by_user={"model.arch", "model.init"})
    return tmp / "run", base, results


def train_losses(run: pathlib.Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / rundir.METRICS_FILE).read_text()
                                   .splitlines()) if r["split"] == "train"]


@pytest.mark.slow
def test_a_lora_run_stopped_at_its_first_checkpoint_resumes_bitwise(lora_run, tmp_path,
                                                                     monkeypatch):
    """Its checkpoint holds the adapters and the head only: the frozen base comes back from
    model.init, and the rest of the run is the uninterrupted one's."""
    run, base, results = lora_run
    resumed = stopped_at_first_checkpoint_then_resumed(lora_config(tmp_path, base),
                                                       tmp_path / "resumed", monkeypatch)
    assert len(train_losses(run)) == results["steps"] >= 2
    np.testing.assert_array_equal(train_losses(tmp_path / "resumed"), train_losses(run))
    assert resumed["val"] == results["val"] and resumed["test"] == results["test"]


def best_state(run: pathlib.Path) -> tuple[dict, dict]:
    state_dir = transfer.checkpoint_state_dir(run)
    meta = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(state_dir.parent / "meta")
    return ocp.StandardCheckpointer().restore(state_dir), meta


def images() -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float32)


def logits_of(folder: pathlib.Path) -> np.ndarray:
    module, variables = transfer.load(folder)
    return np.asarray(module.apply(variables, images(), train=False)[0])


@pytest.mark.slow
def test_a_lora_run_reports_its_trainable_parameters_and_optimizer_memory(lora_run):
    _, _, results = lora_run
    adapters = DEPTH * (EMBED * RANK + RANK * 3 * EMBED  # qkv: A (64, r), B (r, 192)
                        + EMBED * RANK + RANK * EMBED)  # proj: (64, r), (r, 64)
    head = EMBED * CLASSES + CLASSES
    timm_total = 371_240 - (EMBED * 1000 + 1000)  # timm's test_vit without its classifier
    assert results["parameters"]["trainable"] == adapters + head
    assert results["parameters"]["total"] == timm_total + head + adapters
    # AdamW: two float32 moments per trained parameter, plus its step counts
    assert 8 * (adapters + head) <= results["parameters"]["optimizer_state_bytes"] \
        <= 8 * (adapters + head) + 64


@pytest.mark.slow
def test_the_checkpoint_holds_what_trains_and_the_base_by_hash(lora_run):
    run, base, _ = lora_run
    state, meta = best_state(run)
    saved = {"/".join(path) for path in traverse_util.flatten_dict(state["params"])}
    assert {name.rsplit("/", 1)[-1] for name in saved} == {"lora_a", "lora_b", "kernel",
                                                           "bias"}
    assert all(name.startswith("head/") or name.endswith(("lora_a", "lora_b"))
               for name in saved)
    assert len(saved) == 2 + 2 * 2 * DEPTH
    digest = hashlib.sha256((base / pretrained.VARIABLES_FILE).read_bytes()).hexdigest()
    assert meta["base"] == {"init": str(base.resolve()), "sha256": digest}


@pytest.mark.slow
def test_loading_the_run_merges_its_adapters_into_its_base(lora_run):
    run, base, _ = lora_run
    state, _ = best_state(run)
    from safetensors.numpy import load_file

    flat = {tuple(name.split("/")[1:]): value for name, value in
            load_file(base / pretrained.VARIABLES_FILE).items() if name.startswith("params/")}
    flat = {path: value for path, value in flat.items() if path[0] != "head"}
    trained = traverse_util.flatten_dict(state["params"])
    flat |= {path: value for path, value in trained.items() if path[0] == "head"}
    for path in {path[:-1] for path in trained if path[-1] == "lora_a"}:
        a, b = trained[(*path, "lora_a")], trained[(*path, "lora_b")]
        flat[(*path, "kernel")] = flat[(*path, "kernel")] + (8.0 / RANK) * (a @ b)
    assert np.any([np.any(trained[p]) for p in trained if p[-1] == "lora_b"])  # B trained
    model = create_model(ARCH, num_outputs=CLASSES)
    expected = model.apply({"params": traverse_util.unflatten_dict(flat)}, images(),
                           train=False)[0]
    np.testing.assert_allclose(logits_of(run), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_evaluating_the_run_reproduces_its_test_metrics(lora_run, tmp_path):
    run, _, results = lora_run
    config = tiny_config(tmp_path, "eyepacs")
    config.data.cache_dir = str(run.parent / "cache")
    scored = evaluate.evaluate_checkpoint(config, run, tmp_path / "evaluated")
    assert scored["test"]["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)
    assert scored["test"]["kappa"] == pytest.approx(results["test"]["kappa"])


@pytest.mark.slow
def test_export_writes_a_pretrained_folder_and_timm_weights_that_convert_back(lora_run,
                                                                              tmp_path):
    run, _, _ = lora_run
    written = export_command.export(run, tmp_path / "out")
    assert [path.name for path in written] == [pretrained.VARIABLES_FILE,
                                               export_command.TIMM_FILE]
    info = pretrained.read_info(tmp_path / "out")
    assert (info.arch, info.num_classes, info.source["adapter"]) == (ARCH, CLASSES, "lora")
    expected = logits_of(run)
    np.testing.assert_array_equal(logits_of(tmp_path / "out"), expected)
    timm_conversion.convert(ARCH, str(tmp_path / "out" / export_command.TIMM_FILE),
                            str(tmp_path / "back"))
    np.testing.assert_allclose(logits_of(tmp_path / "back"), expected, atol=1e-6)


@pytest.mark.slow
def test_a_changed_base_is_refused(lora_run):
    run, base, _ = lora_run
    original = (base / pretrained.VARIABLES_FILE).read_bytes()
    try:
        write_base(base, seed=1)
        with pytest.raises(TransferError, match=r"trained with LoRA on model.init=.*those "
                                                r"weights have changed"):
            transfer.load_variables(run)
    finally:
        (base / pretrained.VARIABLES_FILE).write_bytes(original)
    transfer.load_variables(run)


def test_a_run_without_adapters_exports_as_it_is(tmp_path):
    """A best checkpoint of a plain run (written here, not trained) exports unchanged."""
    model = create_model(ARCH, num_outputs=3)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    state = TrainState(step=jnp.asarray(1), params=variables["params"], batch_stats={},
                       opt_state={}, rng=jnp.zeros((2,), jnp.uint32))
    saver = checkpoints.RunCheckpoints(tmp_path / "run", keep=1, best_metric="kappa")
    saver.save_if_best(1, state, {"epoch": 1, "val": {"kappa": 0.5}})
    saver.close()
    config = tiny_config(tmp_path, "eyepacs", {"model.arch": ARCH}).to_dict()
    (tmp_path / "run" / rundir.CONFIG_FILE).write_text(json.dumps(config, default=list))
    export_command.export(tmp_path / "run", tmp_path / "out")
    exported = transfer.load_variables(tmp_path / "out")
    for path, value in traverse_util.flatten_dict(variables["params"]).items():
        np.testing.assert_array_equal(traverse_util.flatten_dict(exported["params"])[path],
                                      value)
    assert pretrained.read_info(tmp_path / "out").source["adapter"] == "none"


@pytest.mark.parametrize("overrides, message", [
    ({"finetune.strategy": "linear_probe"}, (r"train.adapter is 'lora' but finetune.strategy "
                                             r"is 'linear_probe'")),
    ({"model.init": ""}, r"train.adapter is 'lora' but model.init is empty"),
    ({"finetune.stage_lr_multipliers": (1.0, 1.0, 1.0, 2.0)},  # small_cnn: 4 stages
     r"train.adapter is 'lora' but finetune.stage_lr_multipliers is set"),
    ({"lora.targets": ()}, r"config.lora.targets is \(\); expected a non-empty tuple"),
])
def test_lora_settings_that_cannot_work_are_refused_before_a_run(tmp_path, overrides, message):
    config = tiny_config(tmp_path, "eyepacs", {"train.adapter": "lora",
                                               "model.init": str(tmp_path), **overrides})
    with pytest.raises(ConfigError, match=message):
        validation.validate(config)


def test_the_abstract_build_of_a_lora_run_has_adapters_and_their_optimizer_state_only(tmp_path):
    """The path `jaxtl.commands.plan` takes: shapes only, model.init not read."""
    config = tiny_config(tmp_path, "eyepacs", {
        "model.arch": ARCH, "model.init": str(tmp_path / "not-read"), "train.adapter": "lora",
        "lora.rank": RANK, "optim.name": "adamw"})
    task = tasks.multiclass(["a", "b", "c"])
    transform = build.image_transform(config, augment=False)
    built = build.build_steps(config, task, mesh=steps.make_mesh(jax.devices()[:1]),
                              train_transform=transform, eval_transform=transform,
                              steps_per_epoch=10, total_steps=20, weights=None, abstract=True)
    assert steps.is_abstract(built.state) and isinstance(built.model, lora.LoraModel)
    qkv = built.state.params["backbone"]["blocks_5"]["attn"]["qkv"]
    assert (qkv["lora_a"].shape, qkv["lora_b"].shape) == ((EMBED, RANK), (RANK, 3 * EMBED))
    record = build.parameter_record(built.state, built.optimizer.plan, 20)
    adapters = DEPTH * (EMBED * RANK + RANK * 3 * EMBED + EMBED * RANK + RANK * EMBED)
    assert record["trainable"] == adapters + EMBED * 3 + 3
    assert 8 * record["trainable"] <= record["optimizer_state_bytes"] \
        <= 8 * record["trainable"] + 64


def test_a_lora_state_with_its_optimizer_state_resumes_onto_the_base(tmp_path):
    """The loop's save and restore of the latest checkpoint, on the state `build` makes (the
    optimizer state of the adapters and head only), without training."""
    import grain

    base = write_base(tmp_path / "base")
    config = tiny_config(tmp_path, "eyepacs", {
        "model.arch": ARCH, "demo.arch": ARCH, "model.init": str(base),
        "train.adapter": "lora", "lora.rank": RANK, "optim.name": "adamw"})
    validation.validate(config)
    run, state = build.build(config)
    flat = traverse_util.flatten_dict(state.params)
    moved = state.replace(step=state.step + 5, params=traverse_util.unflatten_dict(
        {path: value + 1 if lora.is_trainable(path) else value for path, value in flat.items()}),
        opt_state=jax.tree.map(lambda leaf: leaf + 2, state.opt_state))
    iterator = grain.MapDataset.range(4).to_iter_dataset().__iter__()
    saver = checkpoints.RunCheckpoints(tmp_path / "run", keep=1, best_metric="kappa",
                                       base=run.base)
    saver.save_latest(5, moved, iterator, {"epoch": 1})
    saver.wait()
    restored, _ = saver.restore_latest(state, iterator)  # as fresh as a new process's
    saver.close()
    assert run.base == transfer.base_reference(base)
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(moved), strict=True):
        np.testing.assert_array_equal(got, want)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
