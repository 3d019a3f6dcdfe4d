"""Losses of the neural video renderer (paper Eq. 5, 6, 8, 9; design.md section 1).

- :func:`lsgan_loss` and :func:`feature_matching_loss` over :class:`~.networks.MultiscaleDiscriminator`
  outputs (pix2pixHD's LSGAN; the feature-matching term is optional, the authors do not use it);
- :class:`VGGPerceptualLoss`: pix2pixHD's VGG19 loss, weights from a local file only
  (:func:`resolve_vgg_weights` turns the ``perceptual.weights`` setting into a path or ``None``);
- :func:`structure_loss`: 1 - MS-SSIM (pytorch-msssim), structural supervision that needs no weights;
- :func:`temporal_loss` (Eq. 5) with :func:`warp`;
- :func:`uv_pretrain_loss` (Eq. 6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from pytorch_msssim import ms_ssim
from torch import Tensor, nn

from posetransfer.errors import ConfigError
from posetransfer.model.networks import check_shape

WEIGHTS_KEY = "perceptual.weights"
VGG19_CACHE_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1 file name
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's vgg19().features, with pix2pixHD's weights
VGG_LAYERS = (1, 6, 11, 20, 29)
VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------
# GAN
# ----------------------------------------------------------------------------------------------


def _total(terms: Sequence[Tensor]) -> Tensor:
    """Sum of loss terms on their own device and dtype (no CPU zero to start from)."""
    return sum(terms[1:], terms[0])


def _final_maps(predictions: Sequence[Tensor | Sequence[Tensor]]) -> list[Tensor]:
    if len(predictions) == 0:
        raise ValueError("no discriminator predictions")
    return [p if isinstance(p, Tensor) else p[-1] for p in predictions]


def lsgan_loss(predictions: Sequence[Tensor | Sequence[Tensor]], target_is_real: bool) -> Tensor:
    """LSGAN: ``sum over scales of mean((D - target)^2)``, target 1 for real, 0 for fake (pix2pixHD's sum).

    ``predictions``: one entry per scale, either the prediction map or the scale's list of outputs
    from :class:`~.networks.MultiscaleDiscriminator` (its last element is the map).
    """
    target = 1.0 if target_is_real else 0.0
    return _total([F.mse_loss(m, torch.full_like(m, target)) for m in _final_maps(predictions)])


def feature_matching_loss(
    fake_feats: Sequence[Sequence[Tensor]], real_feats: Sequence[Sequence[Tensor]]
) -> Tensor:
    """pix2pixHD's discriminator feature matching: L1 between intermediate features, real ones detached.

    Each scale's list ends with the prediction map, which is left out; weights as pix2pixHD:
    ``4 / n_features`` per layer and ``1 / num_D`` per scale.
    """
    if len(fake_feats) != len(real_feats) or not fake_feats:
        raise ValueError(
            f"need as many scales of fake as of real features, got {len(fake_feats)}, {len(real_feats)}"
        )
    terms = []
    for fake_scale, real_scale in zip(fake_feats, real_feats, strict=True):
        features = len(fake_scale) - 1
        if features < 1 or len(real_scale) != len(fake_scale):
            raise ValueError("each scale needs the same number (>= 2) of fake and real outputs")
        weight = 4.0 / features / len(fake_feats)
        for fake, real in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            terms.append(weight * F.l1_loss(fake, real.detach()))
    return _total(terms)


# ----------------------------------------------------------------------------------------------
# VGG19 perceptual loss
# ----------------------------------------------------------------------------------------------


def resolve_vgg_weights(setting: str | Path | None) -> Path | None:
    """The VGG19 weights file that ``perceptual.weights`` names, or ``None`` for "perceptual term off".

    ``auto``: torchvision's standard cache file ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``
    (``torch.hub.get_dir()``: ``$TORCH_HOME`` defaults to ``~/.cache/torch``) where it exists, else
    ``None`` (the caller logs that the term is off); ``none`` / ``None``: ``None``; any other value is a
    path that must exist (``ConfigError`` naming the file and the key otherwise). Nothing is downloaded.
    """
    from posetransfer import weights

    return weights.resolve(setting, "vgg19")[0]


def _load_vgg19_features(path: Path) -> nn.Sequential:
    """torchvision's ``vgg19().features`` up to relu5_1, weights from a state dict file (no download)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the user's config problem
        raise ConfigError(f"cannot be read as a VGG19 state dict ({WEIGHTS_KEY}): {error}", path) from error
    if not isinstance(state, Mapping):
        raise ConfigError(f"is not a VGG19 state dict ({WEIGHTS_KEY})", path)
    with torch.device("meta"):  # built without initialising (or allocating) the 120M classifier weights
        features = torchvision.models.vgg19(weights=None).features[: VGG_LAYERS[-1] + 1]
    wanted = {key: state.get(f"features.{key}") for key in features.state_dict()}
    missing = [key for key, value in wanted.items() if value is None]
    if missing:
        raise ConfigError(
            f"is not a torchvision VGG19 state dict, no features.{missing[0]} ({WEIGHTS_KEY})", path
        )
    try:
        features.load_state_dict(wanted, assign=True)
    except RuntimeError as error:
        raise ConfigError(f"does not fit torchvision's VGG19 ({WEIGHTS_KEY}): {error}", path) from error
    return features


class VGGPerceptualLoss(nn.Module):
    """pix2pixHD's VGG loss: ``sum_i w_i |VGG_i(x) - VGG_i(y)|_1`` at relu1_1..relu5_1, w = 1/32 .. 1.

    Inputs are images in [-1, 1], mapped to [0, 1] and ImageNet-normalised first (pix2pixHD feeds them
    raw; the weights were trained on normalised input). The network is frozen and stays in eval
    mode; the target's features are computed without gradient.
    """

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"VGG19 weights file not found ({WEIGHTS_KEY})", path)
        self.features = _load_vgg19_features(path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # frozen: never leaves eval mode

    def _activations(self, image: Tensor) -> list[Tensor]:
        x = ((image + 1) / 2 - self.mean) / self.std
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG_LAYERS:
                outputs.append(x)
        return outputs

    def forward(self, generated: Tensor, target: Tensor) -> Tensor:
        check_shape(generated, "generated", (None, 3, None, None))
        check_shape(target, "target", tuple(generated.shape))
        fake = self._activations(generated)
        with torch.no_grad():
            real = self._activations(target)
        return _total([w * F.l1_loss(a, b) for w, a, b in zip(VGG_LAYER_WEIGHTS, fake, real, strict=True)])


# ----------------------------------------------------------------------------------------------
# Structure (MS-SSIM)
# ----------------------------------------------------------------------------------------------

MS_SSIM_DOWNSAMPLINGS = 4  # pytorch-msssim's five scales


def ms_ssim_window(side: int) -> int:
    """The largest odd Gaussian window (<= 11, the standard) that MS-SSIM's coarsest scale still fits."""
    window = 11
    while window > 3 and (window - 1) * 2**MS_SSIM_DOWNSAMPLINGS >= side:
        window -= 2
    if (window - 1) * 2**MS_SSIM_DOWNSAMPLINGS >= side:
        raise ValueError(f"MS-SSIM needs images larger than {(window - 1) * 2**MS_SSIM_DOWNSAMPLINGS} px")
    return window


def structure_loss(generated: Tensor, target: Tensor) -> Tensor:
    """``1 - MS-SSIM`` of images in [-1, 1] (pytorch-msssim's five scales, window fitted to the size).

    MS-SSIM compares local means, contrasts and structure at five scales; beside L2 it penalises the
    blur that a pixel loss alone accepts, and unlike VGG19 it needs no downloaded weights.
    """
    check_shape(generated, "generated", (None, 3, None, None))
    check_shape(target, "target", tuple(generated.shape))
    window = ms_ssim_window(min(generated.shape[-2:]))
    x, y = (generated.float() + 1) / 2, (target.float() + 1) / 2
    return 1 - ms_ssim(x, y, data_range=1.0, win_size=window)


# ----------------------------------------------------------------------------------------------
# Temporal loss (Eq. 5)
# ----------------------------------------------------------------------------------------------


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warp ``out[y, x] = image[y + dy, x + dx]``, bilinear, border padding; flow (N, 2, H, W) in px.

    Same convention as :func:`posetransfer.flow.warp`: warping frame t-1 by the backward flow (t -> t-1)
    brings it to frame t.
    """
    check_shape(image, "image", (None, None, None, None))
    n, _, h, w = image.shape
    check_shape(flow, "flow", (n, 2, h, w))
    if h < 2 or w < 2:
        raise ValueError(f"warp needs at least 2x2 pixels, got {h}x{w}")
    ys = torch.arange(h, device=image.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=image.device, dtype=flow.dtype).view(1, 1, w)
    grid_x = 2 * (xs + flow[:, 0]) / (w - 1) - 1
    grid_y = 2 * (ys + flow[:, 1]) / (h - 1) - 1
    grid = torch.stack((grid_x, grid_y), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def temporal_loss(
    current: Tensor, previous_generated: Tensor, flow_backward: Tensor, confidence: Tensor
) -> Tensor:
    """Eq. 5: ``mean_k c_k |I_t - warp(I_{t-1}, f_b)|(k)``, averaged over pixels, channels and batch.

    ``flow_backward`` (N, 2, H, W) maps frame t to t-1 in pixels (x, y); ``confidence`` (N, 1, H, W) in
    [0, 1]. Gradient flows into both frames; detach ``previous_generated`` to hold it fixed.
    """
    check_shape(current, "current", (None, None, None, None))
    n, _, h, w = current.shape
    check_shape(previous_generated, "previous_generated", tuple(current.shape))
    check_shape(confidence, "confidence", (n, 1, h, w))
    warped = warp(previous_generated, flow_backward)
    return (confidence * (current - warped).abs()).mean()


# ----------------------------------------------------------------------------------------------
# UV-generator pretraining (Eq. 6)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UVLossWeights:
    """Eq. 6's coefficients: the paper's 1 and 1 (the authors' code: parts 10, UV 500 when pretraining)."""

    parts: float = 1.0
    uv: float = 1.0


def _true_part_uv(uv: Tensor, index: Tensor) -> Tensor:
    """(N, P, 2, H, W) -> (N, 2, H, W): each pixel's UV in the part ``index`` (N, H, W) names."""
    n, _, _, h, w = uv.shape
    return uv.gather(1, index.view(n, 1, 1, h, w).expand(n, 1, 2, h, w)).squeeze(1)


def uv_pretrain_loss(
    logits: Tensor,
    uv: Tensor,
    target_parts: Tensor,
    target_uv: Tensor,
    weights: UVLossWeights = UVLossWeights(),  # frozen dataclass: a safe default
) -> dict[str, Tensor]:
    """Eq. 6: cross-entropy on the 25 part logits + L1 on the true part's UV over body pixels.

    ``logits`` (N, P + 1, H, W), ``uv`` (N, P, 2, H, W), ``target_parts`` (N, H, W) int64 in 0..P,
    ``target_uv`` (N, P, 2, H, W) or (N, 2, H, W) (the true part's UV). The UV term is the mean over
    body pixels and both coordinates (0 where a batch has no body pixel). Returns ``total``, ``parts``
    (CE) and ``uv`` (L1), so the caller can log each.
    """
    check_shape(logits, "logits", (None, None, None, None))
    n, classes, h, w = logits.shape
    check_shape(uv, "uv", (n, classes - 1, 2, h, w))
    check_shape(target_parts, "target_parts", (n, h, w))
    if target_parts.dtype != torch.long:
        raise TypeError(f"target_parts must be int64 class indices, got {target_parts.dtype}")
    index = (target_parts - 1).clamp(min=0)
    if target_uv.ndim == 5:
        check_shape(target_uv, "target_uv", tuple(uv.shape))
        target_uv = _true_part_uv(target_uv, index)
    else:
        check_shape(target_uv, "target_uv", (n, 2, h, w))
    ce = F.cross_entropy(logits, target_parts)
    body = (target_parts > 0).unsqueeze(1).to(uv.dtype)
    error = (_true_part_uv(uv, index) - target_uv).abs() * body
    l1 = error.sum() / (2 * body.sum()).clamp(min=1)  # no host sync for an empty mask
    return {"total": weights.parts * ce + weights.uv * l1, "parts": ce, "uv": l1}
