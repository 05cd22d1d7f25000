"""timm's logits for the parity checks: the only module here that imports torch and timm.

A standalone script, run by `verify` with an interpreter that has torch + timm (jax and jaxtl are
not needed; it imports nothing from this package), or imported by `make_golden`:

    python timm_reference.py --arch resnet50 --first_conv conv1 --classifier fc \\
        --state state.npz --inputs inputs.npz --out logits.npz [--timm_kwargs '{"global_pool": "avg"}']

`--arch` is timm's model name and `--timm_kwargs` (JSON) the arguments of `timm.create_model`
that give it jaxtl's layout (the architecture's `TimmCheckpoint`); `state.npz` is the timm state dict (name -> array, as `reading.read_weights` reads it);
`--first_conv` and `--classifier` name timm's first convolution and classifier modules (the
architecture's `TimmCheckpoint` in jaxtl.models, passed on by the caller). `inputs.npz` holds NHWC
float32 images; each is run through timm and its logits are written under the same name. What a
1-channel input is compared with (`reference_logits`):
  * the 3-channel timm model on the grey image repeated on R, G and B: jaxtl's channel rule
    (mean kernel x 3 / C) promises exactly those activations, so this checks the converted
    weights and the rule together against timm;
  * for BiT (`resnetv2_*`), whose weight-standardised stem cannot keep that promise, timm's own
    `in_chans=1` model, whose stem timm adapts by summing the RGB kernels: that raw kernel is
    3 x the mean kernel, the very kernel jaxtl's rule gives for C = 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

import numpy as np
import timm
import torch
from timm.models._manipulate import adapt_input_conv

STD_CONV_STEMS = ("resnetv2_",)


def build(arch: str, num_classes: int, in_chans: int = 3,
          kwargs: Mapping | None = None) -> torch.nn.Module:
    return timm.create_model(arch, pretrained=False, num_classes=num_classes,
                             in_chans=in_chans, **dict(kwargs or {})).eval()


def load(model: torch.nn.Module, state: Mapping[str, np.ndarray]) -> torch.nn.Module:
    """Loads every tensor; the only ones allowed to stay unset are BN `num_batches_tracked`."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"timm did not take the weights: missing {missing[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]}")
    for name, value in model.state_dict().items():  # timm holds exactly the given tensors
        if name in state and not np.array_equal(value.numpy(), state[name]):
            raise RuntimeError(f"timm's {name} differs from the file")
    return model


def forward(model: torch.nn.Module, images_nhwc: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return model(x).numpy().astype(np.float32)


def reference_logits(arch: str, model3: torch.nn.Module, state: Mapping[str, np.ndarray],
                     images_nhwc: np.ndarray, *, first_conv: str, classifier: str,
                     kwargs: Mapping | None = None) -> np.ndarray:
    """timm's logits for 3-channel images, or the reference for 1-channel ones (module doc)."""
    channels = images_nhwc.shape[-1]
    if channels == in_chans(state, first_conv):
        return forward(model3, images_nhwc)
    if channels != 1:
        raise ValueError(f"no timm reference for {channels}-channel images")
    if arch.startswith(STD_CONV_STEMS):
        key = first_conv + ".weight"
        adapted = dict(state)
        adapted[key] = adapt_input_conv(1, torch.from_numpy(state[key])).numpy()
        model1 = load(build(arch, num_classes(state, classifier), 1, kwargs), adapted)
        return forward(model1, images_nhwc)
    return forward(model3, np.repeat(images_nhwc, in_chans(state, first_conv), axis=-1))


def in_chans(state: Mapping[str, np.ndarray], first_conv: str) -> int:
    return int(state[first_conv + ".weight"].shape[1])


def num_classes(state: Mapping[str, np.ndarray], classifier: str) -> int:
    return int(state[classifier + ".weight"].shape[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="timm_reference.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--first_conv", required=True, help="timm module, e.g. conv1")
    parser.add_argument("--classifier", required=True, help="timm module, e.g. fc")
    parser.add_argument("--state", required=True, help=".npz of the timm state dict")
    parser.add_argument("--inputs", required=True, help=".npz of NHWC float32 images")
    parser.add_argument("--out", required=True, help=".npz to write the logits to")
    parser.add_argument("--timm_kwargs", default="{}", help="JSON: timm.create_model arguments")
    args = parser.parse_args(argv)
    kwargs = json.loads(args.timm_kwargs)
    with np.load(args.state, allow_pickle=False) as archive:
        state = {name: archive[name] for name in archive.files}
    model3 = load(build(args.arch, num_classes(state, args.classifier),
                        in_chans(state, args.first_conv), kwargs), state)
    with np.load(args.inputs) as inputs:
        logits = {name: reference_logits(args.arch, model3, state, inputs[name],
                                         first_conv=args.first_conv, classifier=args.classifier,
                                         kwargs=kwargs)
                  for name in inputs.files}
    np.savez(args.out, **logits)


if __name__ == "__main__":
    main()
