"""The neural video renderer's networks (paper Sec. 3, Eq. 1-4; design.md section 1).

One building block, pix2pixHD's global generator, serves three uses:

- :class:`UVGenerator` (``G_uv``): pose label -> 25 part logits + 24 x (U, V) in [0, 1];
- :class:`D2GNet`: mapped hybrid-texture feature (18 ch) -> RGB, the pose label concatenated at the
  intermediate level (paper Fig. 3), at the input, or not at all (``pose_input``);
- :class:`PoseToImage`: pose label -> RGB (the Everybody-Dance-Now-like baseline).

Around them: the hybrid texture ``T`` (:class:`HybridTexture`), texture mapping (Eq. 1,
:func:`texture_mapping`), the learnable background and the composite (Eq. 3, 4), and pix2pixHD's
conditional multi-scale PatchGAN (:class:`MultiscaleDiscriminator`).

Choices (see the README's design section):

- Normalisation is instance norm without affine parameters, as pix2pixHD; convolutions followed by
  it carry no bias (instance norm removes a per-channel constant, so such a bias never learns).
- Where ``D2GNet`` takes the pose at the intermediate level, the 6-channel label is brought to the
  bottleneck resolution by its own encoder (7x7 stem and ``n_down`` stride-2 convs at the main
  encoder's widths, the second downsampling stream of Fig. 3), not by interpolation: area
  interpolation to 1/16 would average the one-pixel skeleton lines away. The two streams are
  concatenated and fused back to the main width by a 1x1 conv + IN + ReLU before the res blocks.
- Upsampling is pix2pixHD's (and Fig. 3's) transposed 3x3 conv, stride 2.
- Weights start from N(0, 0.02), as pix2pixHD's ``weights_init``; the global RNG decides them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

NUM_PARTS = 24  # DensePose parts, index 1..24; 0 is the background
POSE_CHANNELS = 6  # skeleton RGB + 3D label
TEXTURE_CHANNELS = 18  # 3 RGB + 15 implicit (the authors' PyTorch release; Jittor: 3 + 12)
PoseInput = Literal["intermediate", "input", "none"]
POSE_INPUTS: tuple[str, ...] = ("intermediate", "input", "none")
BODY_IUV_CHANNELS = NUM_PARTS + 1 + 2  # one-hot parts (with background) + U, V
PRIOR_LOGIT = 8.0  # the body's part starts at softmax 0.992 against 24 others at 0
# The person is within this share of the image side of the fitted body (clothes, hair, fit error):
# the UV loss's person-shaped target reaches no farther, and a body-prior UV generator renders no
# person beyond it (no ghost where the training person used to stand, in transfer).
BODY_REACH = 0.04
BEYOND_REACH_LOGIT = 30.0  # subtracted from every part's logit beyond the reach: background there
BodyIUV = tuple[Tensor, Tensor]  # parts (N, H, W) int64 in 0..24, UV (N, 2, H, W) in [0, 1]


# ----------------------------------------------------------------------------------------------
# Shape checks (Kornia-style: first thing in every forward)
# ----------------------------------------------------------------------------------------------


def check_shape(x: Tensor, name: str, shape: Sequence[int | None]) -> None:
    """Raise ``ValueError`` unless ``x`` has ``len(shape)`` dims of the given sizes (``None``: any)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape, strict=False)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def check_resolution(x: Tensor, name: str, n_down: int) -> None:
    """H and W must halve ``n_down`` times exactly and leave at least 2x2 for the reflect padding."""
    factor = 2**n_down
    height, width = x.shape[-2:]
    if height % factor or width % factor or min(height, width) < 2 * factor:
        raise ValueError(
            f"{name}: height and width must be multiples of {factor} and at least {2 * factor} "
            f"(n_down={n_down}), got {height}x{width}"
        )


# ----------------------------------------------------------------------------------------------
# pix2pixHD global generator, in stages
# ----------------------------------------------------------------------------------------------


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


def _init_weights(module: nn.Module) -> None:
    """pix2pixHD's initialisation: conv weights N(0, 0.02), biases zero."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _output_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """The generator's last layer: reflect-padded 7x7 conv (with bias, no norm)."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, out_channels, 7))


class Encoder(nn.Sequential):
    """Reflect-padded 7x7 stem, then ``n_down`` stride-2 3x3 convs, each doubling the width."""

    def __init__(self, in_channels: int, ngf: int, n_down: int) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=False),
            _norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for i in range(n_down):
            width = ngf * 2**i
            layers += [
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
                _norm(2 * width),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = ngf * 2**n_down


class ResBlock(nn.Module):
    """pix2pixHD's residual block: two reflect-padded 3x3 conv + IN, ReLU between, no dropout."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            _norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Decoder(nn.Sequential):
    """``n_up`` transposed 3x3 convs, stride 2, each halving the width."""

    def __init__(self, in_channels: int, n_up: int) -> None:
        layers: list[nn.Module] = []
        for i in range(n_up):
            width = in_channels // 2**i
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=False),
                _norm(width // 2),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)
        self.out_channels = in_channels // 2**n_up


class Trunk(nn.Module):
    """pix2pixHD's global generator without its output layer: encoder, [condition], res blocks, decoder.

    With ``cond_channels > 0`` a second image (the pose label) is encoded by its own encoder to the
    bottleneck, concatenated with the main stream and fused back to the main width (1x1 conv).
    Returns ``ngf`` channels at the input resolution.
    """

    def __init__(
        self, in_channels: int, ngf: int, n_down: int, n_blocks: int, cond_channels: int = 0
    ) -> None:
        super().__init__()
        if ngf < 1 or n_down < 0 or n_blocks < 0 or cond_channels < 0:
            raise ValueError(f"bad sizes: ngf={ngf}, n_down={n_down}, n_blocks={n_blocks}")
        self.n_down, self.cond_channels = n_down, cond_channels
        # Stage 1: downsampling encoder(s)
        self.encoder = Encoder(in_channels, ngf, n_down)
        width = self.encoder.out_channels
        self.cond_encoder = Encoder(cond_channels, ngf, n_down) if cond_channels else None
        self.fuse = (
            nn.Sequential(nn.Conv2d(2 * width, width, 1, bias=False), _norm(width), nn.ReLU(inplace=True))
            if cond_channels
            else None
        )
        # Stage 2: residual blocks at the bottleneck
        self.blocks = nn.Sequential(*(ResBlock(width) for _ in range(n_blocks)))
        # Stage 3: upsampling decoder
        self.decoder = Decoder(width, n_down)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        hidden = self.encoder(x)
        if self.cond_encoder is not None and self.fuse is not None:
            if cond is None:
                raise ValueError("this trunk is conditioned: pass cond")
            hidden = self.fuse(torch.cat([hidden, self.cond_encoder(cond)], dim=1))
        return self.decoder(self.blocks(hidden))


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator: :class:`Trunk` then a 7x7 conv and tanh (images in [-1, 1])."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ngf: int = 64,
        n_down: int = 4,
        n_blocks: int = 9,
        cond_channels: int = 0,
    ) -> None:
        super().__init__()
        self.trunk = Trunk(in_channels, ngf, n_down, n_blocks, cond_channels)
        self.head = _output_conv(ngf, out_channels)
        self.apply(_init_weights)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return torch.tanh(self.head(self.trunk(x, cond)))


# ----------------------------------------------------------------------------------------------
# UV generator
# ----------------------------------------------------------------------------------------------


class UVGenerator(nn.Module):
    """``G_uv``: pose label (N, 6, H, W) -> part logits (N, 25, H, W), UV (N, 24, 2, H, W) in [0, 1].

    pix2pixHD trunk with two output heads: 25 part logits (background + 24 parts; softmax them for
    the probabilities ``P``) and 48 UV channels through tanh mapped to [0, 1] by ``(t + 1) / 2``,
    grouped per part as (U, V).

    ``body_prior=True`` (``model.uv_input: pose+body_iuv``): the IUV rasterised from the fitted body
    is a second input (one-hot parts + U, V: :data:`BODY_IUV_CHANNELS`) and the outputs are residuals
    on top of it: ``PRIOR_LOGIT`` is added to the body's part logit, and the body's part takes the
    body's UV plus a learned offset. Both heads start at zero, so an untrained generator returns the
    body's IUV (the lookup of the initial texture is right from the first step) and training learns
    only what the body fit misses: clothing, hair, fit errors. Farther than :data:`BODY_REACH` from
    the body (a square neighbourhood) every pixel is background.
    """

    def __init__(
        self,
        in_channels: int = POSE_CHANNELS,
        ngf: int = 64,
        n_down: int = 4,
        n_blocks: int = 9,
        body_prior: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.n_down, self.body_prior = in_channels, n_down, body_prior
        trunk_in = in_channels + (BODY_IUV_CHANNELS if body_prior else 0)
        self.trunk = Trunk(trunk_in, ngf, n_down, n_blocks)
        self.part_head = _output_conv(ngf, NUM_PARTS + 1)
        self.uv_head = _output_conv(ngf, 2 * NUM_PARTS)
        self.apply(_init_weights)
        if body_prior:  # residual heads start at zero: output = the body's IUV
            for head in (self.part_head, self.uv_head):
                nn.init.zeros_(head[-1].weight)
                nn.init.zeros_(head[-1].bias)

    def forward(self, pose: Tensor, body: BodyIUV | None = None) -> tuple[Tensor, Tensor]:
        check_shape(pose, "pose", (None, self.in_channels, None, None))
        check_resolution(pose, "pose", self.n_down)
        if not self.body_prior:
            hidden = self.trunk(pose)
            uv = (torch.tanh(self.uv_head(hidden)) + 1) / 2
            return self.part_head(hidden), uv.unflatten(1, (NUM_PARTS, 2))
        if body is None:
            raise ValueError("this UV generator has a body prior (uv_input pose+body_iuv): pass the body IUV")
        parts, body_uv = body
        n, _, h, w = pose.shape
        check_shape(parts, "body parts", (n, h, w))
        check_shape(body_uv, "body uv", (n, 2, h, w))
        onehot = F.one_hot(parts.long(), NUM_PARTS + 1).permute(0, 3, 1, 2).to(pose.dtype)
        body_uv = body_uv.to(pose.dtype)
        hidden = self.trunk(torch.cat([pose, onehot, body_uv * 2 - 1], dim=1))
        logits = self.part_head(hidden) + PRIOR_LOGIT * onehot
        beyond = 1 - body_neighbourhood(parts > 0, round(BODY_REACH * max(h, w))).to(logits.dtype)
        logits = torch.cat([logits[:, :1], logits[:, 1:] - BEYOND_REACH_LOGIT * beyond], dim=1)
        in_part = onehot[:, 1:, None]  # (N, 24, 1, H, W): the body's part at each pixel
        base = in_part * body_uv[:, None] + (1 - in_part) * 0.5
        offset = torch.tanh(self.uv_head(hidden)).unflatten(1, (NUM_PARTS, 2)) / 2
        return logits, (base + offset).clamp(0, 1)


def body_neighbourhood(body: Tensor, reach: int) -> Tensor:
    """(N, H, W) bool -> (N, 1, H, W) bool: within ``reach`` pixels (a square) of the body.

    Two 1D max-pools (rows, then columns) dilate in O(reach) per pixel, not O(reach^2).
    """
    check_shape(body, "body", (None, None, None))
    mask = body[:, None].float()
    if reach > 0:
        size = 2 * reach + 1
        mask = F.max_pool2d(mask, (1, size), stride=1, padding=(0, reach))
        mask = F.max_pool2d(mask, (size, 1), stride=1, padding=(reach, 0))
    return mask > 0


def body_iuv_tensors(iuv_png: np.ndarray, device: torch.device | str = "cpu") -> BodyIUV:
    """DensePose-layout IUV images (N, H, W, 3) uint8 -> parts (N, H, W) int64, UV (N, 2, H, W) in [0, 1]."""
    iuv = torch.as_tensor(np.ascontiguousarray(iuv_png), device=device)
    check_shape(iuv, "IUV images", (None, None, None, 3))
    if iuv.dtype != torch.uint8:
        raise TypeError(f"IUV images must be uint8, got {iuv.dtype}")
    parts = iuv[..., 0].long()
    if parts.numel() and int(parts.max()) > NUM_PARTS:
        raise ValueError(f"part index {int(parts.max())} > {NUM_PARTS}: not a DensePose IUV image")
    uv = (iuv[..., 1:].float() / 255).permute(0, 3, 1, 2) * (parts > 0)[:, None]
    return parts, uv.contiguous()


# ----------------------------------------------------------------------------------------------
# Hybrid texture and texture mapping (Eq. 1)
# ----------------------------------------------------------------------------------------------


class HybridTexture(nn.Module):
    """The hybrid texture ``T``: a learnable (parts, channels, S, S) map; channels 0-2 are RGB in [-1, 1].

    Texel ``[p - 1, :, row, col]`` holds part ``p`` at ``U = col / (S - 1)``, ``V = 1 - row / (S - 1)``,
    the texture atlas's convention (:func:`posetransfer.texture.unwrap`). Build it with :meth:`from_atlas`:
    an all-zero texture maps to an all-zero feature, where D2G-Net's first ReLU passes no gradient.
    """

    def __init__(self, parts: int = NUM_PARTS, channels: int = TEXTURE_CHANNELS, size: int = 200) -> None:
        super().__init__()
        if parts < 1 or channels < 3 or size < 2:
            raise ValueError(
                f"need parts >= 1, channels >= 3 (RGB first), size >= 2; got {parts}, {channels}, {size}"
            )
        self.texture = nn.Parameter(torch.zeros(parts, channels, size, size))

    @classmethod
    def from_atlas(cls, atlas: np.ndarray | Tensor, channels: int = TEXTURE_CHANNELS) -> HybridTexture:
        """An RGB atlas (parts, S, S, 3), uint8 or float in [0, 1], becomes channels 0-2 in [-1, 1]."""
        rgb = torch.as_tensor(np.asarray(atlas)) if not isinstance(atlas, Tensor) else atlas.detach().cpu()
        check_shape(rgb, "atlas", (None, None, None, 3))
        if rgb.shape[1] != rgb.shape[2]:
            raise ValueError(f"atlas tiles must be square, got {tuple(rgb.shape)}")
        if rgb.dtype == torch.uint8:
            rgb = rgb.float() / 255
        elif rgb.is_floating_point():
            rgb = rgb.float()
            if rgb.numel() and (rgb.min() < 0 or rgb.max() > 1):
                raise ValueError("a float atlas must hold colours in [0, 1]")
        else:
            raise TypeError(f"atlas must be uint8 or float, got {rgb.dtype}")
        texture = cls(rgb.shape[0], channels, rgb.shape[1])
        with torch.no_grad():
            texture.texture[:, :3] = rgb.permute(0, 3, 1, 2) * 2 - 1
        return texture

    @property
    def rgb(self) -> Tensor:
        """The static (explicit colour) channels, (parts, 3, S, S)."""
        return self.texture[:, :3]

    def forward(self, part_probs: Tensor, uv: Tensor, checkpoint: bool = False) -> Tensor:
        return texture_mapping(self.texture, part_probs, uv, checkpoint)


def _mapped_part(texture: Tensor, prob: Tensor, grid: Tensor) -> Tensor:
    """``prob * phi(texture, grid)`` for one part: texture (C, S, S), prob (N, H, W), grid (N, H, W, 2)."""
    n, h, w, _ = grid.shape
    # The batch folds into the grid's rows: one texture, no (N, C, S, S) expansion.
    sampled = F.grid_sample(
        texture[None],
        grid.reshape(1, n * h, w, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return prob[:, None] * sampled.view(-1, n, h, w).transpose(0, 1)


def texture_mapping(texture: Tensor, part_probs: Tensor, uv: Tensor, checkpoint: bool = False) -> Tensor:
    """Eq. 1: ``sum_{p=1..P} P_p * phi(T_p, C_p)`` -> (N, C, H, W); the background probability is unused.

    ``texture`` (P, C, S, S), ``part_probs`` (N, P + 1, H, W) (index 0 background), ``uv`` (N, P, 2, H, W)
    in [0, 1]. ``phi`` is bilinear ``grid_sample`` (``align_corners=True``, border padding) at
    ``x = 2U - 1, y = 1 - 2V``. Parts are sampled one at a time, so no (N, P, C, H, W) tensor exists in
    the forward pass; ``checkpoint=True`` also keeps autograd from storing the P sampled maps (it
    samples them again in the backward pass): memory O(N C H W) instead of O(P N C H W).
    """
    check_shape(texture, "texture", (None, None, None, None))
    parts = texture.shape[0]
    check_shape(part_probs, "part_probs", (None, parts + 1, None, None))
    n, _, h, w = part_probs.shape
    check_shape(uv, "uv", (n, parts, 2, h, w))
    grid = torch.stack((2 * uv[:, :, 0] - 1, 1 - 2 * uv[:, :, 1]), dim=-1).to(texture.dtype)
    recompute = checkpoint and torch.is_grad_enabled()
    mapped: Tensor | None = None
    # unbind, not texture[p]: indexing would make the backward pass zero-fill a gradient the size of
    # the whole texture once per part (24 x 17 M floats per step at 200 px); unbind stacks once.
    for p, part_texture in enumerate(texture.unbind(0)):
        args = (part_texture, part_probs[:, p + 1], grid[:, p])
        term = (
            activation_checkpoint(_mapped_part, *args, use_reentrant=False)
            if recompute
            else _mapped_part(*args)
        )
        mapped = term if mapped is None else mapped + term
    assert mapped is not None
    return mapped.contiguous()


# ----------------------------------------------------------------------------------------------
# D2G-Net and the pose-to-image baseline
# ----------------------------------------------------------------------------------------------


class D2GNet(nn.Module):
    """D2G-Net (Eq. 2): mapped feature (N, in_channels, H, W) [+ pose label] -> foreground RGB in [-1, 1].

    ``pose_input``: ``intermediate`` (the paper, Fig. 3: the pose label's own encoder output joins the
    main stream at the bottleneck, before the res blocks), ``input`` (concatenated to the feature,
    the authors' Jittor release), ``none`` (no pose: the authors' PyTorch release and the
    ``no_condition`` ablation; a pose passed to ``forward`` is ignored).
    """

    def __init__(
        self,
        in_channels: int = TEXTURE_CHANNELS,
        pose_channels: int = POSE_CHANNELS,
        ngf: int = 64,
        n_down: int = 4,
        n_blocks: int = 9,
        pose_input: PoseInput = "intermediate",
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        if pose_input not in POSE_INPUTS:
            raise ValueError(f"pose_input must be one of {', '.join(POSE_INPUTS)}; got {pose_input!r}")
        self.in_channels, self.pose_channels, self.n_down = in_channels, pose_channels, n_down
        self.pose_input = pose_input
        first = in_channels + (pose_channels if pose_input == "input" else 0)
        cond = pose_channels if pose_input == "intermediate" else 0
        self.generator = GlobalGenerator(first, out_channels, ngf, n_down, n_blocks, cond)

    def forward(self, feature: Tensor, pose: Tensor | None = None) -> Tensor:
        check_shape(feature, "feature", (None, self.in_channels, None, None))
        check_resolution(feature, "feature", self.n_down)
        if self.pose_input == "none":
            return self.generator(feature)
        if pose is None:
            raise ValueError(f"D2GNet with pose_input={self.pose_input!r} needs the pose label")
        check_shape(pose, "pose", (feature.shape[0], self.pose_channels, *feature.shape[2:]))
        if self.pose_input == "input":
            return self.generator(torch.cat([feature, pose], dim=1))
        return self.generator(feature, pose)


class PoseToImage(nn.Module):
    """The ``pose_to_image`` baseline (Everybody-Dance-Now-like): pix2pixHD from the pose label to RGB."""

    def __init__(
        self,
        pose_channels: int = POSE_CHANNELS,
        ngf: int = 64,
        n_down: int = 4,
        n_blocks: int = 9,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.pose_channels, self.n_down = pose_channels, n_down
        self.generator = GlobalGenerator(pose_channels, out_channels, ngf, n_down, n_blocks)

    def forward(self, pose: Tensor) -> Tensor:
        check_shape(pose, "pose", (None, self.pose_channels, None, None))
        check_resolution(pose, "pose", self.n_down)
        return self.generator(pose)


# ----------------------------------------------------------------------------------------------
# Background and composition (Eq. 3, 4)
# ----------------------------------------------------------------------------------------------


class Background(nn.Module):
    """The learnable background image ``I_bg``, (1, 3, H, W) in [-1, 1], refined during training."""

    def __init__(self, resolution: int | tuple[int, int], init: Tensor | None = None) -> None:
        super().__init__()
        height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
        if init is None:
            init = torch.zeros(3, height, width)
        check_shape(init, "background init", (3, height, width))
        self.image = nn.Parameter(init.detach().clone().float()[None])

    @classmethod
    def from_rgb(cls, image: np.ndarray) -> Background:
        """From an (H, W, 3) uint8 image, e.g. the background cache's initial estimate."""
        rgb = torch.as_tensor(np.asarray(image))
        check_shape(rgb, "background image", (None, None, 3))
        if rgb.dtype != torch.uint8:
            raise TypeError(f"background image must be uint8, got {rgb.dtype}")
        return cls(tuple(rgb.shape[:2]), rgb.permute(2, 0, 1).float() / 127.5 - 1)

    def forward(self) -> Tensor:
        return self.image


def composite(fg: Tensor, bg: Tensor, p_background: Tensor) -> Tensor:
    """Eq. 3 / 4: ``fg * (1 - P0) + bg * P0``; fg (N, C, H, W), bg (N or 1, C, H, W), P0 (N, 1, H, W)."""
    check_shape(fg, "fg", (None, None, None, None))
    n, c, h, w = fg.shape
    check_shape(bg, "bg", (None, c, h, w))
    if bg.shape[0] not in (1, n):
        raise ValueError(f"bg batch must be 1 or {n}, got {bg.shape[0]}")
    check_shape(p_background, "p_background", (n, 1, h, w))
    return fg * (1 - p_background) + bg * p_background


# ----------------------------------------------------------------------------------------------
# Conditional multi-scale PatchGAN (Eq. 8)
# ----------------------------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """pix2pixHD's N-layer PatchGAN: 4x4 convs (pad 2), LeakyReLU 0.2, IN after the first; no sigmoid (LSGAN).

    Returns every stage's output: ``n_layers + 1`` features, then the (N, 1, h, w) prediction map.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        stages = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2))]
        width = ndf
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1  # the last feature stage keeps the resolution
            nxt = min(width * 2, 512)
            stages.append(
                nn.Sequential(
                    nn.Conv2d(width, nxt, 4, stride=stride, padding=2, bias=False),
                    _norm(nxt),
                    nn.LeakyReLU(0.2),
                )
            )
            width = nxt
        stages.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=2)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator on ``cat(pose label, image)`` (or two frames of both).

    ``forward`` returns one list per scale (index 0 full resolution, each next one 2x average-pooled),
    each holding the intermediate features and, last, the prediction map.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, num_D: int = 2) -> None:
        super().__init__()
        if num_D < 1 or n_layers < 1:
            raise ValueError(f"need num_D >= 1 and n_layers >= 1, got {num_D}, {n_layers}")
        self.in_channels = in_channels
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers) for _ in range(num_D)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        check_shape(x, "discriminator input", (None, self.in_channels, None, None))
        results = []
        for scale, discriminator in enumerate(self.discriminators):
            if scale:
                x = self.downsample(x)
            results.append(discriminator(x))
        return results


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
