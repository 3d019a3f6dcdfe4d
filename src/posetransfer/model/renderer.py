"""What a training run is: the variants, presets, :class:`TrainConfig` and the :class:`Renderer`.

The generator side of every variant (paper Sec. 3, Eq. 1-4) built from a config: UV generator
(with or without the fitted body's IUV as prior), hybrid texture, D2G-Net, learnable background;
or the pose-to-image baseline. ``posetransfer.training`` trains it, ``posetransfer.render`` loads a
trained one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from posetransfer import resources
from posetransfer.errors import ConfigError
from posetransfer.model.networks import (
    Background,
    BodyIUV,
    D2GNet,
    HybridTexture,
    PoseToImage,
    UVGenerator,
    composite,
)

VARIANTS = ("full", "no_d2g", "rgb_texture", "no_condition", "pose_to_image")
UV_INPUTS = ("pose", "pose+body_iuv")
UV_TARGETS = ("body", "person")
# Ablations of the full model: settings, not architectures (``TrainConfig.for_variant``): Table 3's
# and one per change of issue 12 (body prior, structure and feature-matching terms, EMA, lr decay).
LOSS_ABLATIONS: dict[str, dict[str, Any]] = {
    "no_temporal": {"w_temporal": 0.0},
    "video_discriminator": {"temporal_discriminator": True},
    "pose_only_uv": {"uv_input": "pose"},
    "d2g_image": {"d2g_residual": False},
    "body_uv_target": {"uv_target": "body"},
    "no_ssim": {"w_ssim": 0.0},
    "no_feature_matching": {"w_feature_matching": 0.0},
    "no_ema": {"ema": 0.0},
    "no_lr_decay": {"lr_decay": False},
    "no_residual_penalty": {"w_residual": 0.0},  # D2G-Net's residual unpenalised, as in the paper
}
PRESETS: dict[str, dict[str, Any]] = {
    # A CPU-sized run that shows the whole method working in about a minute.
    "smoke": {
        "resolution": 64,
        "epochs": 4,
        "min_steps": 0,
        "warmup_epochs": 1,
        "ngf": 16,
        "n_blocks": 3,
        "ndf": 16,
        "texture_size": 64,
    },
    # 128 px, mid-width networks: a 10-second clip on 2 CPU cores in under 45 minutes; on a GPU,
    # raise train.resolution (README, "Presets").
    "standard": {
        "resolution": 128,
        "epochs": 6,
        "min_steps": 600,  # a short clip (65 frames: 29 steps an epoch) still gets enough steps
        "warmup_epochs": 1,
        "ngf": 24,
        "n_blocks": 4,
        "ndf": 24,
        "texture_size": 128,
    },
    # The paper's schedule (30 epochs, 3 warm-up, as in the authors' code) at the frames' resolution.
    "paper": {
        "resolution": None,
        "epochs": 30,
        "min_steps": 0,
        "warmup_epochs": 3,
        "ngf": 64,
        "n_blocks": 9,
        "ndf": 64,
        "texture_size": None,
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (the ``train``, ``model`` and ``losses`` config sections)."""

    variant: str = "full"
    resolution: int | None = 64
    epochs: int = 4
    min_steps: int = 0
    warmup_epochs: int = 1
    batch_pairs: int = 2
    learning_rate: float = 0.0002
    beta1: float = 0.5
    ngf: int = 16
    n_down: int = 4
    n_blocks: int = 3
    ndf: int = 16
    d_layers: int = 3
    num_d: int = 2
    texture_channels: int = 18
    texture_size: int | None = 64
    d2g_pose_input: str = "intermediate"
    temporal_discriminator: bool = False
    uv_input: str = "pose+body_iuv"
    uv_target: str = "person"
    d2g_residual: bool = True
    ema: float = 0.999
    lr_decay: bool = True
    w_l2: float = 200.0
    w_perceptual: float = 10.0
    w_ssim: float = 10.0
    w_regular: float = 1.0
    w_gan: float = 1.0
    w_feature_matching: float = 10.0
    w_temporal: float = 100.0
    w_uv: float = 1.0
    w_residual: float = 20.0
    perceptual_weights: str | None = "auto"
    checkpoint_every: int = 50
    sample_every: int = 50
    loader_workers: int = 1
    in_memory_mb: float = 1024.0
    seed: int = 0
    amp: bool = True
    compile: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainConfig:
        """Build from the validated config: the preset's values, overridden by keys set explicitly."""
        train, model, weights = dict(config["train"]), dict(config["model"]), dict(config["losses"])
        preset = PRESETS[train.pop("preset")]
        values = {
            key: (preset[key] if value is None and key in preset else value) for key, value in train.items()
        }
        values.update(
            {key: (preset[key] if value is None and key in preset else value) for key, value in model.items()}
        )
        values.update({f"w_{key}": value for key, value in weights.items()})
        values["perceptual_weights"] = config["perceptual"]["weights"]
        values["seed"] = config["seed"]
        return cls(**values)

    def for_variant(self, name: str) -> TrainConfig:
        """This config for another variant: an architecture (VARIANTS) or a Table 3 ablation."""
        if name in LOSS_ABLATIONS:
            return dataclasses.replace(self, variant="full", **LOSS_ABLATIONS[name])
        return dataclasses.replace(self, variant=name)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant: unknown variant {self.variant!r}, expected one of {VARIANTS}")
        if self.uv_input not in UV_INPUTS:
            raise ConfigError(f"model.uv_input: unknown input {self.uv_input!r}, expected one of {UV_INPUTS}")
        if self.uv_target not in UV_TARGETS:
            raise ConfigError(
                f"model.uv_target: unknown target {self.uv_target!r}, expected one of {UV_TARGETS}"
            )

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The epochs a run makes: ``epochs``, or more where a short clip needs them for ``min_steps``."""
        return resources.epochs_for(self.epochs, self.min_steps, steps_per_epoch)

    @property
    def training_uv_target(self) -> str | None:
        """The UV loss's target the training pairs carry (``model.uv_target``); None where unused."""
        return self.uv_target if self.variant != "pose_to_image" and self.w_uv > 0 else None

    @property
    def body_prior(self) -> bool:
        """Whether the UV generator starts from the fitted body's IUV (``model.uv_input``)."""
        return self.uv_input == "pose+body_iuv" and self.variant != "pose_to_image"

    def loss_terms(self, vgg: bool) -> list[str]:
        """The generator's loss terms this config switches on (logged and shown in the report)."""
        weights = {"l2": self.w_l2, "perceptual (VGG19)": self.w_perceptual if vgg else 0.0,
                   "ms-ssim": self.w_ssim, "gan": self.w_gan, "feature matching": self.w_feature_matching,
                   "temporal": self.w_temporal, "uv": self.w_uv}  # fmt: skip
        with_d2g = self.variant not in ("no_d2g", "pose_to_image")
        weights["regular"] = self.w_regular if with_d2g else 0.0
        weights["d2g residual"] = self.w_residual if with_d2g and self.d2g_residual else 0.0
        return [name for name, weight in weights.items() if weight > 0]


class Renderer(torch.nn.Module):
    """The generator side of one variant: pose label (and UV) -> image, plus what the losses need."""

    def __init__(self, config: TrainConfig, atlas: np.ndarray, background: torch.Tensor) -> None:
        super().__init__()
        self.variant = config.variant
        channels = 3 if config.variant in ("no_d2g", "rgb_texture") else config.texture_channels
        size = dict(ngf=config.ngf, n_down=config.n_down, n_blocks=config.n_blocks)
        if config.variant == "pose_to_image":
            self.generator = PoseToImage(**size)
            return
        self.uv_generator = UVGenerator(**size, body_prior=config.body_prior)
        if config.texture_size is not None and config.texture_size != atlas.shape[1]:
            side = (config.texture_size, config.texture_size)
            atlas = np.stack([cv2.resize(part, side, interpolation=cv2.INTER_AREA) for part in atlas])
        self.texture = HybridTexture.from_atlas(atlas, channels)
        self.background = Background(tuple(background.shape[1:]), background)
        if config.variant != "no_d2g":
            pose_input = "none" if config.variant == "no_condition" else config.d2g_pose_input
            self.d2g = D2GNet(in_channels=channels, pose_input=pose_input, **size)
            self.d2g_residual = config.d2g_residual
            if config.d2g_residual:  # starts as the static texture's colours: D2G adds dynamic detail
                nn.init.zeros_(self.d2g.generator.head[-1].weight)
                nn.init.zeros_(self.d2g.generator.head[-1].bias)

    @property
    def needs_body(self) -> bool:
        """Whether ``forward`` needs the fitted body's IUV (``model.uv_input: pose+body_iuv``)."""
        return self.variant != "pose_to_image" and self.uv_generator.body_prior

    def forward(
        self,
        pose: torch.Tensor,
        use_d2g: bool = True,
        background: torch.Tensor | None = None,
        body: BodyIUV | None = None,
    ) -> dict[str, torch.Tensor]:
        """Render pose labels; ``background`` (1 or N, 3, H, W) replaces the learned one (Fig. 13).

        ``body``: the fitted body's IUV in the same poses (parts, UV), for a UV generator with the
        body prior; ignored otherwise.
        """
        if self.variant == "pose_to_image":
            image = self.generator(pose)
            return {"image": image, "rgb_branch": image}
        logits, uv = self.uv_generator(pose, body if self.needs_body else None)
        probs = logits.softmax(dim=1)
        mapped = self.texture(probs, uv)
        if background is None:
            background = self.background()
        background = background.to(pose).expand(len(pose), -1, -1, -1)
        p_background = probs[:, :1]
        rgb_branch = composite(mapped[:, :3], background, p_background)  # Eq. 4
        out = {"logits": logits, "uv": uv, "rgb_branch": rgb_branch, "image": rgb_branch}
        if use_d2g and self.variant != "no_d2g":
            foreground = self.d2g(mapped, pose)  # Eq. 2
            if self.d2g_residual:
                out["residual"] = foreground
                foreground = (mapped[:, :3] + foreground).clamp(-1, 1)
            out["image"] = composite(foreground, background, p_background)  # Eq. 3
        return out
