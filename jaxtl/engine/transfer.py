"""Starting a run from pretrained weights: a converted checkpoint or another jaxtl run.

`--config.model.init=PATH` accepts
  * a converted pretrained checkpoint: a folder with `pretrained.json` + `variables.safetensors`
    (`jaxtl.workdir.pretrained`, written by `python -m jaxtl.convert_weights.timm|bit|...`),
  * a model of the Hugging Face hub, `hf-hub:ORG/NAME` (converted once into jaxtl's cache:
    `jaxtl.engine.hub`), or
  * a jaxtl run: its workdir (the best, else the latest checkpoint), or one step folder.

A run from a converted checkpoint takes the checkpoint's input statistics (data.mean, data.std)
unless the config sets them (`take_preprocessing`), and records the checkpoint's
`pretrained.json` in results.json.

The backbone comes from the checkpoint; the classifier head is dropped and re-initialised for
the new task. Every backbone variable of the new model must be found in the checkpoint with the
same shape, except the first convolution when the task has another number of input channels
(see `adapt_input_kernel`). Anything else fails with the lists of missing, unexpected and
mis-shaped names.

Channel adaptation rule (C_old -> C_new input channels, e.g. RGB -> 1 grey or 10 bands): every
new input channel gets the mean of the old channels' kernels, scaled by C_old / C_new:

    W_new[:, :, c, :] = (C_old / C_new) * mean_k W_old[:, :, k, :]    for c = 1..C_new

so an image whose C_new channels are all equal to one grey image g produces exactly the
activations the old model produced for g repeated on its C_old channels (the sum over input
channels is unchanged), for any C_new. With C_new = 1 this is timm's `adapt_input_conv`
(summed kernels). Weight-standardised convolutions normalise their kernel, so the scale factor
cannot survive there: NF-ResNet's ScaledStdConv2d compensates with its learnable `gain`
(exact grey-image equivalence again, see `adapt_input_kernel`); BiT's StdConv2d has no gain,
so its adapted filters keep the averaged spatial pattern but each filter's output is rescaled
by the standardisation (the GroupNorm that follows BiT's stem absorbs most of it).

A LoRA run (`train.adapter=lora`) saves only its adapters and head: loading it
(`load_variables`, and so `load`, evaluation, explanations, features, a later `model.init`)
reads its base from the run's `model.init`, refuses a base whose content changed since training
(`base_reference`), and returns the merged plain model's variables (`jaxtl.models.lora.merge`).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

from jaxtl.config.base import base_config
from jaxtl.core.errors import TransferError
from jaxtl.data import loading
from jaxtl.data.cache import cache_root, default_cache_root
from jaxtl.data.registry import DatasetSpec
from jaxtl.engine import hub
from jaxtl.models import lora
from jaxtl.workdir import checkpoints, pretrained
from jaxtl.workdir import files as rundir

HEAD = "head"


# --- Converted checkpoints (their format: jaxtl.workdir.pretrained) ---------------------------

def local(path: str | pathlib.Path, cache_dir: str | pathlib.Path | None = None) -> pathlib.Path:
    """The folder of `model.init` value `path`: itself, or for a hub reference (hf-hub:ORG/NAME)
    its converted checkpoint in jaxtl's cache (`cache_dir`, default `$JAXTL_CACHE` or
    ~/.cache/jaxtl), converted on first use."""
    if hub.is_reference(path):
        return hub.converted(str(path), cache_dir or default_cache_root(),
                             pretrained.FORMAT_VERSION)
    return pathlib.Path(path).expanduser()


def is_pretrained(path: str | pathlib.Path) -> bool:
    """A converted checkpoint (a hub reference is one once converted)."""
    return (hub.is_reference(path)
            or (pathlib.Path(path).expanduser() / pretrained.PRETRAINED_FILE).is_file())


# --- jaxtl runs ------------------------------------------------------------------------------

def checkpoint_state_dir(path: str | pathlib.Path) -> pathlib.Path:
    """The `state` folder of a workdir's best (else latest) checkpoint, or of a step folder."""
    path = pathlib.Path(path).expanduser().resolve()
    if (path / "state").is_dir():
        return path / "state"
    for sub in (rundir.BEST_DIR, rundir.LATEST_DIR):
        steps = sorted((p for p in (path / sub).glob("*") if p.name.isdigit()),
                       key=lambda p: int(p.name))
        if steps and (steps[-1] / "state").is_dir():
            return steps[-1] / "state"
    if (path / pretrained.VARIABLES_FILE).is_file():
        raise TransferError(f"model.init={path} has {pretrained.VARIABLES_FILE} but no "
                            f"{pretrained.PRETRAINED_FILE}: the conversion did not finish; "
                            f"{pretrained.convert_again(path)}")
    raise TransferError(f"model.init={path} is neither a converted pretrained checkpoint "
                        f"(a folder with {pretrained.PRETRAINED_FILE}) nor a jaxtl workdir or "
                        f"checkpoint: "
                        f"expected {rundir.BEST_DIR}/<step>/state or {rundir.LATEST_DIR}/<step>/"
                        f"state inside it")


def load_variables(path: str | pathlib.Path,
                   cache_dir: str | pathlib.Path | None = None) -> dict[str, Any]:
    """{'params': ..., 'batch_stats': ...} of a converted checkpoint (a hub reference's in
    `cache_dir`) or a saved run, as NumPy; a LoRA run's with its adapters merged into its
    base."""
    path = local(path, cache_dir)
    if is_pretrained(path):
        return pretrained.read_variables(path)
    state_dir = checkpoint_state_dir(path)
    state = ocp.StandardCheckpointer().restore(state_dir)
    variables = {name: jax.tree_util.tree_map(np.asarray, state[name])
                 for name in pretrained.COLLECTIONS if name in state}
    if lora.has_adapters(variables.get("params", {})):
        variables = _merged_lora_run(path, state_dir, variables)
    return variables


def base_reference(path: str | pathlib.Path) -> dict[str, str]:
    """{'init': path, 'sha256': ...}: what a LoRA run's frozen base is, by content: the SHA-256
    of a converted checkpoint's variables file (a hub reference's, converted), or of a run
    checkpoint's files (each one's name, then its bytes, in name order)."""
    path = local(path).resolve()
    digest = hashlib.sha256()
    if is_pretrained(path):
        _hash_file(digest, path / pretrained.VARIABLES_FILE)
    else:
        root = checkpoint_state_dir(path)
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(root)).encode() + b"\0")
            _hash_file(digest, file)
    return {"init": str(path), "sha256": digest.hexdigest()}


def _hash_file(digest: Any, file: pathlib.Path) -> None:
    with file.open("rb") as stream:
        while chunk := stream.read(1 << 24):
            digest.update(chunk)


def _merged_lora_run(path: str | pathlib.Path, state_dir: pathlib.Path,
                     trained: dict[str, Any]) -> dict[str, Any]:
    """A LoRA run's saved adapters, head and statistics on its base, merged."""
    run_config = _run_config(path)
    meta_dir = state_dir.parent / "meta"
    meta = (ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(meta_dir)
            if meta_dir.is_dir() else {})
    # the base's absolute path as the run resolved it; config.json holds it as it was typed
    init = meta.get(checkpoints.BASE_KEY, {}).get("init") or run_config["model"]["init"]
    if not pathlib.Path(init).expanduser().exists():
        raise TransferError(f"{path} is a LoRA run on model.init={init}, which is not there "
                            f"any more: its adapters need that base")
    checkpoints.check_base(meta, base_reference(init), state_dir.parent)
    base = load_variables(init)
    params = {name: value for name, value in
              traverse_util.flatten_dict(dict(base["params"])).items() if name[0] != HEAD}
    params |= traverse_util.flatten_dict(dict(trained["params"]))
    settings = lora.LoraSettings.from_config(run_config["lora"])
    merged = lora.merge(traverse_util.unflatten_dict(params), settings.scale)
    return {"params": jax.tree_util.tree_map(np.asarray, merged),
            "batch_stats": trained.get("batch_stats", {})}


def _run_config(path: pathlib.Path) -> dict[str, Any]:
    state_dir = checkpoint_state_dir(path)
    workdir = rundir.run_folder_of(state_dir)  # <workdir>/best/<step>/state
    if workdir is None:
        raise TransferError(f"{path}: found the checkpoint {state_dir} but no "
                            f"{rundir.CONFIG_FILE} in a folder above it, so the model it "
                            f"belongs to is unknown")
    return json.loads((workdir / rundir.CONFIG_FILE).read_text())


def load(path: str | pathlib.Path, dtype: str = "float32", in_channels: int | None = None,
         cache_dir: str | pathlib.Path | None = None) -> tuple[Any, dict[str, Any]]:
    """`(module, variables)` of a converted checkpoint or a jaxtl run, ready for inference:

        logits, _ = module.apply(variables, images_nhwc, train=False)

    With `in_channels` (e.g. 1 for grey images from an RGB checkpoint) the first convolution
    is adapted by the channel rule; the head is kept. The variables are checked against the
    module: a wrong or damaged file fails here, listing the names that do not fit.
    """
    from jaxtl import models  # the zoo is only needed here

    path = local(path, cache_dir)
    variables = load_variables(path)
    if is_pretrained(path):
        info = pretrained.read_info(path)
        module = models.create_model(info.arch, num_outputs=info.num_classes, head=info.head,
                                     dtype=dtype)
        size, channels = max(info.resolution, 75), info.in_channels
    else:
        run_config = _run_config(path)
        num_outputs = int(variables["params"][HEAD]["fc"]["bias"].shape[0])
        module = models.create_model(run_config["model"]["arch"], num_outputs=num_outputs,
                                     head=run_config["model"]["head"],
                                     dropout=run_config["model"]["dropout"], dtype=dtype)
        size = int(run_config["data"]["resolution"])
        channels = in_channels or _image_channels(module, variables, size)
    channels = in_channels or channels
    expected = jax.eval_shape(lambda: module.init(
        jax.random.key(0), jnp.zeros((1, size, size, channels), jnp.float32), train=False))
    merged = _merge(f"{path}", variables, expected, in_channels=channels, keep_target_head=False)
    return module, jax.tree_util.tree_map(jnp.asarray, merged)


def _image_channels(module: Any, variables: Mapping[str, Any], resolution: int) -> int:
    """The image channels a run's variables were made for: the input dimension of the one
    kernel that differs from the same model built for 1-channel images (1 if none differs)."""
    one = jax.eval_shape(lambda: module.init(
        jax.random.key(0), jnp.zeros((1, resolution, resolution, 1), jnp.float32), train=False))
    want = traverse_util.flatten_dict(dict(one.get("params", {})), sep="/")
    have = traverse_util.flatten_dict(dict(variables.get("params", {})), sep="/")
    for name, leaf in want.items():
        if name in have and len(leaf.shape) == 4 and np.shape(have[name]) != leaf.shape:
            return int(np.shape(have[name])[2])
    return 1


# --- Into a new model ------------------------------------------------------------------------

def adapt_input_kernel(kernel: np.ndarray, channels: int,
                       gain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A first-conv kernel (kh, kw, C_old, O) for `channels` inputs, by the rule in the docstring.

    Plain convolution: mean over the old input channels, replicated, times C_old / C_new.

    Scaled weight-standardised convolution (NF nets; `gain` of shape (O,) given): its effective
    kernel is gain * gamma * standardise(W) / sqrt(fan_in), standardised per output channel
    over (kh, kw, C). The mean kernel M = mean_k W is replicated with a per-filter scale s
    chosen so that var(s M) equals the old var(W): the standardisation then divides by the same
    sqrt(var + eps) as before (whatever eps is). The mean subtracted is s mean(M) = s mean(W),
    so the new effective kernel is (gain' / gain) * s * sqrt(C_old / C_new) times the rule's
    target; gain' = gain * sqrt(C_old / C_new) / s makes it exact.
    """
    if np.ndim(kernel) != 4:
        raise ValueError(f"expected a (kh, kw, in, out) kernel, got shape {np.shape(kernel)}")
    if gain is None:  # mean * C_old / C_new == sum / C_new: for C_new = 1, timm's float32 sum
        summed = np.asarray(kernel, np.float32).sum(axis=2, keepdims=True, dtype=np.float32)
        return np.repeat(summed / np.float32(channels), channels, axis=2), None
    kernel = np.asarray(kernel, np.float64)
    old = kernel.shape[2]
    mean = kernel.mean(axis=2, keepdims=True)
    var_old = kernel.var(axis=(0, 1, 2))
    var_mean = mean.var(axis=(0, 1, 2))
    scale = np.where(var_mean > 0, np.sqrt(var_old / np.where(var_mean > 0, var_mean, 1.0)), 1.0)
    adapted = np.repeat(mean * scale, channels, axis=2)
    new_gain = np.asarray(gain, np.float64) * np.sqrt(old / channels) / scale
    return adapted.astype(np.float32), new_gain.astype(np.float32)


def _adaptable(old: np.ndarray, new: Any, in_channels: int | None) -> bool:
    """A kernel that differs from the checkpoint only in its number of input channels, which
    is the number of image channels: the first convolution of a model for another image kind."""
    return (in_channels is not None and np.ndim(old) == 4 and len(new.shape) == 4
            and new.shape[2] == in_channels and old.shape[2] != in_channels
            and old.shape[:2] == tuple(new.shape[:2]) and old.shape[3] == new.shape[3])


def load_into(path: str | pathlib.Path, target: dict[str, Any], *,
              in_channels: int | None = None,
              cache_dir: str | pathlib.Path | None = None) -> dict[str, Any]:
    """`target` (freshly initialised variables) with every non-head leaf taken from `path`.

    `path` is a converted checkpoint, a hub reference (converted into `cache_dir`) or a jaxtl
    run. With `in_channels` (the new model's image
    channels), a first-conv kernel made for another channel count is adapted by
    `adapt_input_kernel`. Leaves from the checkpoint are NumPy arrays;
    `jaxtl.engine.steps.with_variables` places them.
    """
    return _merge(f"model.init={path}", load_variables(path, cache_dir), target,
                  in_channels=in_channels, keep_target_head=True)


def _merge(what: str, source: Mapping[str, Any], target: Mapping[str, Any], *,
           in_channels: int | None, keep_target_head: bool) -> dict[str, Any]:
    """Leaves of `target`'s tree taken from `source` (adapting the first conv), or failure
    listing every missing, unexpected and mis-shaped name. `keep_target_head`: the head comes
    from `target` (a new task) instead of `source`."""
    merged: dict[str, dict[str, Any]] = {}
    missing, unexpected, misshaped, adapted = [], [], [], []
    adapted_gains: dict[str, np.ndarray] = {}
    for collection in pretrained.COLLECTIONS:
        new = traverse_util.flatten_dict(dict(target.get(collection, {})), sep="/")
        old = traverse_util.flatten_dict(dict(source.get(collection, {})), sep="/")

        def skipped(name: str) -> bool:
            return keep_target_head and name.startswith(HEAD + "/")

        out = {}
        for name, value in new.items():
            if skipped(name):
                out[name] = value
            elif name not in old:
                missing.append(f"{collection}/{name}")
            elif tuple(np.shape(old[name])) == tuple(value.shape):
                out[name] = np.asarray(old[name]).astype(value.dtype)
            elif collection == "params" and _adaptable(old[name], value, in_channels):
                gain_name = name.rsplit("/", 1)[0] + "/gain"
                kernel, gain = adapt_input_kernel(old[name], in_channels, old.get(gain_name))
                out[name] = kernel.astype(value.dtype)
                if gain is not None:
                    adapted_gains[gain_name] = gain
                adapted.append(f"{collection}/{name} {old[name].shape[2]} -> {in_channels}")
            else:
                misshaped.append(f"{collection}/{name} {tuple(np.shape(old[name]))} -> "
                                 f"{tuple(value.shape)}")
        unexpected += [f"{collection}/{name}" for name in old
                       if name not in new and not skipped(name)]
        merged[collection] = out
    for name, gain in adapted_gains.items():  # after the loop, which copied the old gains
        merged["params"][name] = gain
    if missing or unexpected or misshaped:
        raise TransferError(f"{what} does not fit model: "
                            + _mismatch_text(missing, unexpected, misshaped))
    for line in adapted:
        logging.info("model.init: adapted %s input channels (mean kernel x C_old/C_new)", line)
    return {collection: traverse_util.unflatten_dict(flat, sep="/")
            for collection, flat in merged.items()}


def _mismatch_text(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    return "; ".join(f"{label} ({len(names)}): {', '.join(names[:8])}"
                     + (" ..." if len(names) > 8 else "")
                     for label, names in (("missing", missing), ("unexpected", unexpected),
                                          ("mis-shaped", misshaped)) if names)


# --- The input a checkpoint expects ------------------------------------------------------------

STATISTICS = ("mean", "std")  # data.mean, data.std: taken from a converted checkpoint


def take_preprocessing(config: ml_collections.ConfigDict, set_by_user: Collection[str] = (),
                       spec: DatasetSpec | None = None
                       ) -> tuple[pretrained.PretrainedInfo | None, list[str]]:
    """A run from a converted checkpoint (`model.init`): its `pretrained.json` and the log lines
    saying what the run takes from it. data.mean and data.std become the checkpoint's unless
    the config sets them (on the command line, `set_by_user`, or to a value other than the
    dataset's default) or the checkpoint is for another number of channels; its resolution is
    only suggested. A checkpoint of another architecture than `model.arch` is refused.
    (None, []) for a random start or a jaxtl run. A damaged checkpoint fails here, before
    any data is read."""
    init = config.model.init
    if not init:
        return None, []
    if not is_pretrained(init):
        checkpoint_state_dir(init)  # a jaxtl run, or the one line saying what the folder lacks
        return None, []
    folder = local(init, cache_root(config))
    info = pretrained.read_info(folder)
    pretrained.check_variables(folder)
    if info.arch != config.model.arch:
        demo = " (a demo run: --config.demo.arch)" if loading.is_demo(config, spec) else ""
        raise TransferError(f"model.init={init} holds {info.arch} weights, but model.arch is "
                            f"{config.model.arch}: set --config.model.arch={info.arch}{demo}")
    where = f"model.init={init} ({_origin(info)})"
    notes = []
    if info.in_channels != config.data.channels:
        notes.append(f"{where}: its mean/std are for {info.in_channels} channel(s), the data "
                     f"have {config.data.channels}: data.mean {tuple(config.data.mean)} and "
                     f"data.std {tuple(config.data.std)} are the config's")
    else:
        defaults = base_config(config.dataset, spec).data
        explicit = [name for name in STATISTICS if f"data.{name}" in set_by_user
                    or _floats(config.data[name]) != _floats(defaults[name])]
        taken = [name for name in STATISTICS if name not in explicit]
        for name in taken:
            config.data[name] = _floats(getattr(info, name))
        said = []
        if taken:
            said.append(" and ".join(f"data.{name} {_floats(config.data[name])}"
                                     for name in taken) + " from the checkpoint")
        if explicit:
            said.append(" and ".join(f"data.{name} {_floats(config.data[name])}"
                                     for name in explicit) + " as the config sets them")
        notes.append(f"{where}: " + "; ".join(said))
    if info.resolution != config.data.resolution:
        notes.append(f"{where}: trained at {info.resolution} px; this run uses "
                     f"data.resolution={config.data.resolution} "
                     f"(--config.data.resolution={info.resolution} matches the checkpoint)")
    return info, notes


def _origin(info: pretrained.PretrainedInfo) -> str:
    source = info.source
    name = source.get("hub") or source.get("file") or "?"
    return f"{source.get('library') or source.get('kind', '?')} {name}"


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
