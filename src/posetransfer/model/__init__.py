"""The neural video renderer: networks, texture mapping and losses (paper Sec. 3, Eq. 1-9)."""

from posetransfer.model.losses import (
    UVLossWeights,
    VGGPerceptualLoss,
    feature_matching_loss,
    lsgan_loss,
    resolve_vgg_weights,
    temporal_loss,
    uv_pretrain_loss,
    warp,
)
from posetransfer.model.networks import (
    Background,
    D2GNet,
    GlobalGenerator,
    HybridTexture,
    MultiscaleDiscriminator,
    PoseToImage,
    UVGenerator,
    composite,
    count_parameters,
    texture_mapping,
)

__all__ = [
    "Background",
    "D2GNet",
    "GlobalGenerator",
    "HybridTexture",
    "MultiscaleDiscriminator",
    "PoseToImage",
    "UVGenerator",
    "UVLossWeights",
    "VGGPerceptualLoss",
    "composite",
    "count_parameters",
    "feature_matching_loss",
    "lsgan_loss",
    "resolve_vgg_weights",
    "temporal_loss",
    "texture_mapping",
    "uv_pretrain_loss",
    "warp",
]
