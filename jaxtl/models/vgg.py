"""VGG16 backbones laid out like timm's `vgg16` / `vgg16_bn`, so its weights convert by name.

Conv layers are named after their index in timm's `features` Sequential (`features_0`,
`features_2`, ...; with BN, `features_0` conv + `features_1` BN, ...). timm's VGG keeps the
classic fc6/fc7 layers as a convolutional `pre_logits` MLP (fc6 = 7x7 conv 512->4096,
fc7 = 1x1 conv 4096->4096, each + ReLU + dropout) followed by average pooling and the
classifier `head.fc`; here the backbone ends after that pooling (`pre_logits_fc1`,
`pre_logits_fc2`), so jaxtl's `linear` head takes the place of `head.fc`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.layers import Dtype, batch_norm, conv_kernel_init, max_pool2d
from jaxtl.models.taps import PRE_LOGITS, STEM, Features, activated, tap

# Output channels of each 3x3 conv, "M" a 2x2/2 max-pool (timm's cfgs["vgg16"]).
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def _conv(features: int, kernel_size: int, padding: int, *, dtype: Dtype, name: str) -> nn.Conv:
    """nn.Conv2d with bias: kaiming_normal_(fan_out, relu) kernel, zero bias (timm's VGG init)."""
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        padding=((padding, padding), (padding, padding)),
        use_bias=True,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=conv_kernel_init,
        name=name,
    )


def _adaptive_avg_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of torch's adaptive_avg_pool along one axis.

    Output i averages inputs [floor(i * in / out), ceil((i + 1) * in / out)).
    """
    weights = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        start, end = (i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def adaptive_avg_pool2d(x: jnp.ndarray, output_size: tuple[int, int]) -> jnp.ndarray:
    """torch.nn.functional.adaptive_avg_pool2d on NHWC input (static shapes)."""
    rows = jnp.asarray(_adaptive_avg_matrix(x.shape[1], output_size[0]), x.dtype)
    cols = jnp.asarray(_adaptive_avg_matrix(x.shape[2], output_size[1]), x.dtype)
    return jnp.einsum("nhwc,ih,jw->nijc", x, rows, cols)


def pre_logits(
    x: jnp.ndarray, train: bool, *, hidden: int, drop_rate: float, dtype: Dtype, kernel_size: int = 7
) -> jnp.ndarray:
    """timm's VGG `pre_logits` ConvMlp: fc6 as a 7x7 valid conv, fc7 as a 1x1 conv, ReLU + dropout.

    Call inside a compact method: creates `pre_logits_fc1` / `pre_logits_fc2` there. As in
    timm, a feature map smaller than 7 on either side (any input below 224 px, e.g. 1x1 at
    32 px) is first resized with adaptive average pooling to (max(7, H), max(7, W)) (for a
    1x1 map that repeats the vector), so fc6 always sees a full 7x7 window. Larger maps
    give a (H-6, W-6) output that the caller averages.
    """
    k = kernel_size
    if x.shape[1] < k or x.shape[2] < k:
        x = adaptive_avg_pool2d(x, (max(k, x.shape[1]), max(k, x.shape[2])))
    x = nn.relu(_conv(hidden, k, 0, dtype=dtype, name="pre_logits_fc1")(x))
    x = nn.Dropout(drop_rate, deterministic=not train)(x)
    return nn.relu(_conv(hidden, 1, 0, dtype=dtype, name="pre_logits_fc2")(x))


class VGG(nn.Module):
    """VGG trunk + pre_logits ConvMlp; returns globally average-pooled features (N, 4096) float32
    and the named features (jaxtl/models/taps.py): `block1` .. `block5` (each block's last conv,
    or its BN, before the ReLU and the max-pool), `stem` (= `block1`), `block5_act` (the last
    block's ReLU output before its max-pool: timm's `features[29]`, `features[42]` with BN;
    Grad-CAM's default), `pre_logits` (the pooled fc7 output: the stage of that name is no map
    on the input's grid).

    Needs inputs of at least 32x32 (five 2x2 max-pools). `drop_rate` is timm's pre_logits
    dropout (0 by default, as timm); above 0 it needs rngs={"dropout": ...} in training.
    """

    cfg: Sequence[int | str] = VGG16_CFG
    use_bn: bool = False
    hidden: int = 4096
    drop_rate: float = 0.0
    dtype: Dtype = jnp.float32

    @property
    def num_features(self) -> int:
        return self.hidden

    @property
    def min_input_size(self) -> int:
        """Smallest square input side in pixels: one 2x2 max-pool per "M"."""
        return 2 ** sum(v == "M" for v in self.cfg)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, Features]:
        min_size = self.min_input_size
        if x.ndim != 4 or min(x.shape[1:3]) < min_size:
            raise ValueError(f"VGG needs NHWC images of at least {min_size}x{min_size} pixels, got shape {x.shape}")
        features: Features = {}
        index = 0  # position in timm's `features` Sequential
        for position, v in enumerate(self.cfg):
            if v == "M":
                x = max_pool2d(x, 2, 2, 0)
                index += 1
                continue
            x = _conv(int(v), 3, 1, dtype=self.dtype, name=f"features_{index}")(x)
            index += 1
            if self.use_bn:
                x = batch_norm(train, dtype=self.dtype, name=f"features_{index}")(x)
                index += 1
            block = f"block{self.cfg[:position].count('M') + 1}"
            if position + 1 == len(self.cfg) or self.cfg[position + 1] == "M":  # a block's last
                x = tap(self, features, block, x)
            x = nn.relu(x)
            if all(v == "M" for v in self.cfg[position + 1:]):  # the last conv
                x = tap(self, features, activated(block), x)
            index += 1
        features[STEM] = features["block1"]
        x = pre_logits(x, train, hidden=self.hidden, drop_rate=self.drop_rate, dtype=self.dtype)
        pooled = tap(self, features, PRE_LOGITS, jnp.mean(x.astype(jnp.float32), axis=(1, 2)))
        return pooled, features


def vgg16(dtype: Dtype = jnp.float32) -> VGG:
    return VGG(VGG16_CFG, use_bn=False, dtype=dtype)


def vgg16_bn(dtype: Dtype = jnp.float32) -> VGG:
    return VGG(VGG16_CFG, use_bn=True, dtype=dtype)


def _stages(batch_norm: bool) -> tuple[Stage, ...]:
    """One stage per max-pool block (features_<index> as in timm), then fc6/fc7."""
    stages, block, index = [], [], 0
    for entry in VGG16_CFG:
        if entry == "M":
            stages.append(Stage(f"block{len(stages) + 1}", rf"features_({'|'.join(block)})/"))
            block, index = [], index + 1
            continue
        block += [str(index), str(index + 1)] if batch_norm else [str(index)]
        index += 3 if batch_norm else 2  # conv (+ bn) + relu
    # fc6, its dropout (an unnamed Linen Dropout) and fc7
    return (*stages, Stage("pre_logits", "(pre_logits_fc[12]|Dropout_0)/"))


_TIMM = TimmCheckpoint(naming="flat", first_conv="features.0", classifier="head.fc",
                       resolution=224, tag="tv_in1k")

# Grad-CAM explains the last convolutional block after its ReLU (`block5_act`): pre_logits
# (fc6/fc7) is the classifier MLP, its 7x7 valid convolution leaves a 1x1 map at 224 px.
ARCHITECTURES = {
    "vgg16": Architecture(vgg16, _stages(batch_norm=False), _TIMM, gradcam_stage="block5",
                          activated_tap=True),
    "vgg16_bn": Architecture(vgg16_bn, _stages(batch_norm=True), _TIMM, gradcam_stage="block5",
                             activated_tap=True),
}
