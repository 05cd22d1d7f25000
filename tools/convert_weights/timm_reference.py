"""timm's logits for the parity checks: the only module here that imports torch and timm.

Run in an environment with torch + timm (jax is not needed), either by `make_golden` or as a
subprocess of `verify`:

    python -m tools.convert_weights.timm_reference --arch resnet50 --weights W.safetensors \\
        --inputs inputs.npz --out logits.npz

`inputs.npz` holds NHWC float32 images; each is run through timm and its logits are written
under the same name. What a 1-channel input is compared with (`reference_logits`):
  * the 3-channel timm model on the grey image repeated on R, G and B: jaxtl's channel rule
    (mean kernel x 3 / C) promises exactly those activations, so this checks the converted
    weights and the rule together against timm;
  * for BiT (`resnetv2_*`), whose weight-standardised stem cannot keep that promise, timm's own
    `in_chans=1` model, whose stem timm adapts by summing the RGB kernels: that raw kernel is
    3 x the mean kernel, the very kernel jaxtl's rule gives for C = 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import numpy as np
import timm
import torch
from timm.models._manipulate import adapt_input_conv

from tools.convert_weights.archs import arch_info
from tools.convert_weights.reading import read_weights

STD_CONV_STEMS = ("resnetv2_",)


def build(arch: str, num_classes: int, in_chans: int = 3) -> torch.nn.Module:
    return timm.create_model(arch, pretrained=False, num_classes=num_classes,
                             in_chans=in_chans).eval()


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
                     images_nhwc: np.ndarray) -> np.ndarray:
    """timm's logits for 3-channel images, or the reference for 1-channel ones (module doc)."""
    channels = images_nhwc.shape[-1]
    if channels == model3_in_chans(arch, state):
        return forward(model3, images_nhwc)
    if channels != 1:
        raise ValueError(f"no timm reference for {channels}-channel images")
    if arch.startswith(STD_CONV_STEMS):
        key = arch_info(arch).first_conv + ".weight"
        adapted = dict(state)
        adapted[key] = adapt_input_conv(1, torch.from_numpy(state[key])).numpy()
        model1 = load(build(arch, num_classes(arch, state), in_chans=1), adapted)
        return forward(model1, images_nhwc)
    return forward(model3, np.repeat(images_nhwc, model3_in_chans(arch, state), axis=-1))


def model3_in_chans(arch: str, state: Mapping[str, np.ndarray]) -> int:
    return int(state[arch_info(arch).first_conv + ".weight"].shape[1])


def num_classes(arch: str, state: Mapping[str, np.ndarray]) -> int:
    return int(state[arch_info(arch).classifier + ".weight"].shape[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.convert_weights.timm_reference",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--weights", required=True, help="timm state dict (.safetensors/.pth/.bin)")
    parser.add_argument("--inputs", required=True, help=".npz of NHWC float32 images")
    parser.add_argument("--out", required=True, help=".npz to write the logits to")
    args = parser.parse_args(argv)
    state = read_weights(args.weights)
    model3 = load(build(args.arch, num_classes(args.arch, state),
                        model3_in_chans(args.arch, state)), state)
    with np.load(args.inputs) as inputs:
        logits = {name: reference_logits(args.arch, model3, state, inputs[name])
                  for name in inputs.files}
    np.savez(args.out, **logits)


if __name__ == "__main__":
    main()
