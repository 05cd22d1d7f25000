"""What the converters need to know about each zoo architecture, without importing timm.

`naming`: how a timm state-dict key becomes a jaxtl variable path (see `timm_layout`).
`classifier`: the timm module that holds the classifier (jaxtl's `head/fc`).
`resolution`, `mean`, `std`: the input of timm 1.0.31's default pretrained weights for the
architecture (`timm.create_model(arch).pretrained_cfg`: `input_size`, `mean`, `std`; the tag
is in `timm_tag`). They become a converted checkpoint's metadata unless the converter is given
others; `make_golden` checks this table against timm.
"""

from __future__ import annotations

import dataclasses

from tools.convert_weights.errors import ConversionError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class ArchInfo:
    naming: str  # "nested" | "flat" | "resnet"
    first_conv: str  # timm module of the first convolution (its input channels)
    classifier: str
    resolution: int
    timm_tag: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


ARCHS: dict[str, ArchInfo] = {
    "resnet18": ArchInfo("resnet", "conv1", "fc", 224, "a1_in1k"),
    "resnet34": ArchInfo("resnet", "conv1", "fc", 224, "a1_in1k"),
    "resnet50": ArchInfo("resnet", "conv1", "fc", 224, "a1_in1k"),
    "resnet101": ArchInfo("resnet", "conv1", "fc", 224, "a1h_in1k"),
    "resnet152": ArchInfo("resnet", "conv1", "fc", 224, "a1h_in1k"),
    "vgg16": ArchInfo("flat", "features.0", "head.fc", 224, "tv_in1k"),
    "vgg16_bn": ArchInfo("flat", "features.0", "head.fc", 224, "tv_in1k"),
    "densenet121": ArchInfo("flat", "features.conv0", "classifier", 224, "ra_in1k"),
    "densenet169": ArchInfo("flat", "features.conv0", "classifier", 224, "tv_in1k"),
    "densenet201": ArchInfo("flat", "features.conv0", "classifier", 224, "tv_in1k"),
    "efficientnet_b0": ArchInfo("nested", "conv_stem", "classifier", 224, "ra_in1k"),
    "efficientnet_b1": ArchInfo("nested", "conv_stem", "classifier", 240, "ra4_e3600_r240_in1k", HALF, HALF),
    "efficientnet_b2": ArchInfo("nested", "conv_stem", "classifier", 256, "ra_in1k"),
    "efficientnet_b3": ArchInfo("nested", "conv_stem", "classifier", 288, "ra2_in1k"),
    "efficientnet_b4": ArchInfo("nested", "conv_stem", "classifier", 320, "ra2_in1k"),
    "efficientnet_b5": ArchInfo("nested", "conv_stem", "classifier", 448, "sw_in12k_ft_in1k"),
    "tf_efficientnet_b0": ArchInfo("nested", "conv_stem", "classifier", 224, "ns_jft_in1k"),
    "tf_efficientnet_b1": ArchInfo("nested", "conv_stem", "classifier", 240, "ns_jft_in1k"),
    "tf_efficientnet_b2": ArchInfo("nested", "conv_stem", "classifier", 260, "ns_jft_in1k"),
    "tf_efficientnet_b3": ArchInfo("nested", "conv_stem", "classifier", 300, "ns_jft_in1k"),
    "tf_efficientnet_b4": ArchInfo("nested", "conv_stem", "classifier", 380, "ns_jft_in1k"),
    "tf_efficientnet_b5": ArchInfo("nested", "conv_stem", "classifier", 456, "ns_jft_in1k"),
    "inception_v3": ArchInfo("nested", "Conv2d_1a_3x3.conv", "fc", 299, "tv_in1k", HALF, HALF),
    "nf_resnet50": ArchInfo("nested", "stem.conv", "head.fc", 256, "ra2_in1k"),
    "resnetv2_50x1_bit": ArchInfo("nested", "stem.conv", "head.fc", 224, "goog_distilled_in1k", HALF, HALF),
}


def arch_info(arch: str) -> ArchInfo:
    if arch not in ARCHS:
        raise ConversionError(f"--arch {arch!r} has no timm converter; convertible architectures: "
                              f"{', '.join(sorted(ARCHS))}")
    return ARCHS[arch]
