"""The flow stage: forward and backward optical flow between adjacent frames, and its confidence.

The temporal loss (paper Eq. 5) warps the previous generated frame into the current one with
pre-computed flow and weights the L1 difference per pixel by a confidence. Pixels where the
flow is wrong, chiefly those the person covers or uncovers between two frames, must weigh
nothing. The confidence is the product of two checks:

* forward-backward (the authors'): following the forward flow and then the backward flow must
  come back to the start, ``|f + f_b(x + f)| < consistency_px`` (they keep ``|.|^2 < 1``);
* photometric (Lai et al., ECCV 2018, "Learning blind video temporal consistency"):
  ``exp(-alpha |a(x) - b(x + f)|^2)`` on RGB in [0, 1], alpha 50. The forward-backward check
  alone passes the strips the person uncovers: DIS drags the person's motion a few pixels into
  the background in both directions alike, so the round trip closes on a wrong match (measured:
  confidence 0.33 on disoccluded pixels of a test scene, 0.05 with both checks). Where the real
  frames disagree after warping, the temporal loss must not ask the generated ones to agree.
  ``photometric_alpha: 0`` gives the authors' check alone.

Backends: OpenCV's DIS (default; CPU, no weights) and torchvision's RAFT (``raft_large``) from a
weights file the user supplies, on CUDA when present. Flow is in pixels at the frames cache's
resolution, ``flow[y, x] = (dx, dy)`` such that ``a[y, x] ~ b[y + dy, x + dx]``.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from posetransfer import cache, preview
from posetransfer.devices import resolve_device
from posetransfer.errors import ConfigError, VideoError
from posetransfer.progress import progress

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

BACKENDS = ("dis", "raft")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
REFERENCE_RESOLUTION = 256  # consistency_px is given at this resolution


@dataclass(frozen=True)
class FlowParams:
    """The ``flow`` section of the config (see workflow/schemas/config.schema.yaml)."""

    backend: str = "dis"
    dis_preset: str = "medium"
    raft_weights: str | None = None
    raft_iters: int = 12
    consistency_px: float = 1.0
    photometric_alpha: float = 50.0  # 0 disables the photometric check

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> FlowParams:
        params = cls(**section)
        if params.backend not in BACKENDS:
            raise ConfigError(f"flow.backend: unknown backend {params.backend!r}, expected one of {BACKENDS}")
        if params.dis_preset not in DIS_PRESETS:
            raise ConfigError(f"flow.dis_preset: unknown preset {params.dis_preset!r}")
        if params.photometric_alpha < 0:
            raise ConfigError(f"flow.photometric_alpha must be >= 0, got {params.photometric_alpha}")
        return params

    def threshold_px(self, resolution: int) -> float:
        """The forward-backward tolerance at ``resolution``: a fixed fraction of the image size."""
        return self.consistency_px * resolution / REFERENCE_RESOLUTION


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected (H, W) grey or (H, W, 3) RGB images, got {a.shape}")


def _check_flow(flow: np.ndarray, name: str = "flow") -> None:
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{name} must have shape (H, W, 2), got {flow.shape}")


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Flow (H, W, 2) float32 from ``a`` to ``b`` by OpenCV's DIS on the grey images."""
    _check_pair(a, b)
    if preset not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}, expected one of {sorted(DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    flow = dis.calc(_grey(a), _grey(b), None)
    return np.asarray(flow, dtype=np.float32)


def load_raft(weights: str | Path | None, device: str = "auto") -> torch.nn.Module:
    """torchvision's ``raft_large`` with the user's state dict, in eval mode on ``device``.

    Nothing is downloaded: a missing or unreadable file is a one-line ConfigError naming it.
    """
    import torch
    from torchvision.models.optical_flow import raft_large

    from posetransfer.weights import resolve

    if weights is None:
        raise ConfigError(
            "flow.raft_weights is null: the raft backend needs torchvision's raft_large weights file"
        )
    path, why = resolve(weights, "raft")  # auto: torch.hub's checkpoints folder
    if path is None:
        raise ConfigError(f"the raft backend needs its weights: {why}")
    model = raft_large(weights=None, progress=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, TypeError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"flow.raft_weights: not a raft_large state dict ({first})", path) from exc
    return model.eval().to(resolve_device(device))


RAFT_MIN_SIDE = 128  # raft_large's 4-level correlation pyramid needs 1/8-resolution maps of 16+


def _to_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1], as RAFT was trained, edge-padded to multiples of 8 and >= 128."""
    import torch

    batch = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float()
    batch = batch / 127.5 - 1.0
    height, width = batch.shape[-2:]
    pad_h = max(RAFT_MIN_SIDE - height, -height % 8)
    pad_w = max(RAFT_MIN_SIDE - width, -width % 8)
    if pad_h or pad_w:
        batch = torch.nn.functional.pad(batch, (0, pad_w, 0, pad_h), mode="replicate")
    return batch


def raft_flow(
    pairs: list[tuple[np.ndarray, np.ndarray]], model: torch.nn.Module, iters: int = 12
) -> list[np.ndarray]:
    """Flow (H, W, 2) float32 from ``a`` to ``b`` for each RGB pair, in one RAFT batch."""
    import torch

    if not pairs:
        return []
    for a, b in pairs:
        _check_pair(a, b)
        if a.ndim != 3:
            raise ValueError(f"RAFT needs (H, W, 3) RGB images, got {a.shape}")
    height, width = pairs[0][0].shape[:2]
    device = next(model.parameters()).device
    with torch.inference_mode():
        first = _to_tensor([a for a, _ in pairs], device)
        second = _to_tensor([b for _, b in pairs], device)
        flows = model(first, second, num_flow_updates=iters)[-1]
    out = flows[:, :, :height, :width].permute(0, 2, 3, 1).float().cpu().numpy()
    return [np.ascontiguousarray(f, dtype=np.float32) for f in out]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear, edges replicated).

    With ``flow`` from a to b, ``warp(b, flow)`` approximates ``a``: the previous frame brought
    into the current one is ``warp(previous, backward)``.
    """
    _check_flow(flow)
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image {image.shape} and flow {flow.shape} differ in size")
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x = grid_x + flow[..., 0].astype(np.float32)
    map_y = grid_y + flow[..., 1].astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency(forward: np.ndarray, backward: np.ndarray, threshold_px: float) -> np.ndarray:
    """Confidence (H, W) float32 of ``forward``: 1 where the round trip closes, else 0.

    A pixel is trusted when ``x + f(x)`` lands inside the other image and
    ``|f(x) + f_b(x + f(x))| < threshold_px`` (the authors' check with a threshold that scales
    with the resolution). Occluded and disoccluded pixels fail it: no flow can close the loop.
    """
    _check_flow(forward, "forward")
    _check_flow(backward, "backward")
    if forward.shape != backward.shape:
        raise ValueError(f"forward {forward.shape} and backward {backward.shape} differ in shape")
    height, width = forward.shape[:2]
    forward = forward.astype(np.float32)
    back_at_target = warp(backward.astype(np.float32), forward)
    mismatch = np.linalg.norm(forward + back_at_target, axis=-1)
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    target_x, target_y = grid_x + forward[..., 0], grid_y + forward[..., 1]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return ((mismatch < threshold_px) & inside).astype(np.float32)


def photometric(a: np.ndarray, b: np.ndarray, flow: np.ndarray, alpha: float = 50.0) -> np.ndarray:
    """Confidence (H, W) float32 in (0, 1] that ``flow`` maps ``a`` onto ``b``: ``exp(-alpha d^2)``.

    ``d`` is the RGB distance (values in [0, 1]) between ``a(x)`` and ``b(x + flow(x))``; alpha 50
    (Lai et al. 2018) gives 0.6 at a difference of 0.1 and 0.01 at 0.3. ``alpha`` 0 gives ones.
    """
    _check_pair(a, b)
    if alpha == 0:
        return np.ones(a.shape[:2], np.float32)
    scale = np.float32(1.0 / 255.0)
    warped = warp(b.astype(np.float32) * scale, flow)
    diff = a.astype(np.float32) * scale - warped
    distance = diff**2 if diff.ndim == 2 else (diff**2).sum(axis=-1)
    return np.exp(-np.float32(alpha) * distance).astype(np.float32)


def confidence(
    a: np.ndarray, b: np.ndarray, forward: np.ndarray, backward: np.ndarray, threshold_px: float, alpha: float
) -> np.ndarray:
    """Confidence (H, W) float32 of the flow ``forward`` from ``a`` to ``b``: both checks' product."""
    return consistency(forward, backward, threshold_px) * photometric(a, b, forward, alpha)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """The Middlebury colour coding of a flow field (torchvision's ``flow_to_image``): hue is the
    direction, saturation the length, white at rest.

    ``max_magnitude`` maps to full saturation (default: the field's largest length; longer ones
    are clipped), so that several fields drawn with one value compare.
    """
    import torch  # the DIS backend needs none: imported where used, as for RAFT
    from torchvision.utils import flow_to_image

    _check_flow(flow)
    field = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1)
    if max_magnitude is None:
        return flow_to_image(field).permute(1, 2, 0).numpy()
    length = field.norm(dim=0).clamp(min=1e-12)
    field = field * (length.clamp(max=max_magnitude) / (length * max(max_magnitude, 1e-6)))
    # flow_to_image scales by the batch's longest vector: a unit-length field beside ours fixes it at 1
    reference = torch.stack([torch.ones_like(field[0]), torch.zeros_like(field[0])])
    return flow_to_image(torch.stack([field, reference]))[0].permute(1, 2, 0).numpy()


class _FlowEstimator:
    """Forward and backward flow of one pair with the configured backend."""

    def __init__(self, params: FlowParams, device: str) -> None:
        if params.backend not in BACKENDS:
            raise ConfigError(f"flow.backend: unknown backend {params.backend!r}, expected one of {BACKENDS}")
        self.params = params
        self.model = load_raft(params.raft_weights, device) if params.backend == "raft" else None

    def pair(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.model is not None:
            forward, backward = raft_flow([(a, b), (b, a)], self.model, self.params.raft_iters)
            return forward, backward
        preset = self.params.dis_preset
        return dis_flow(a, b, preset), dis_flow(b, a, preset)


Shown = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # pair -> (frame, forward, confidence)


def run(
    frames_h5: str | Path,
    out: str | Path,
    preview_png: str | Path,
    params: FlowParams,
    tiles: int = 12,
    device: str = "auto",
) -> None:
    """Flow between every pair of adjacent frames of ``frames_h5``, written to ``out``, and a preview.

    ``device`` matters to RAFT only ('auto': CUDA when torch sees it); DIS runs on the CPU.
    """
    estimator = _FlowEstimator(params, device)
    with cache.open_cache(frames_h5, "frames") as frames_cache:
        count, resolution = len(frames_cache.dataset("frames")), int(frames_cache.attrs["resolution"])
        if count < 2:
            video = frames_cache.attrs.get("source_path", "the video")
            raise VideoError(f"optical flow needs at least 2 frames, {video} gave {count}", frames_h5)
        threshold = params.threshold_px(resolution)
        source_sha256 = frames_cache.attrs["source_sha256"]
        with cache.write_cache(out, "flow", asdict(params), source_sha256) as writer:
            means, shown = _write_pairs(frames_cache, writer, estimator, threshold, tiles)
            writer.attrs.update(
                {
                    "backend": params.backend,
                    "resolution": resolution,
                    "consistency_px": threshold,  # at this resolution, as everything in the cache
                    "consistency_px_at_256": params.consistency_px,
                    "photometric_alpha": params.photometric_alpha,
                }
            )
    log.info(
        "wrote %s: %d pairs at %d px; mean confidence forward %.3f, backward %.3f (threshold %.2f px)",
        out,
        count - 1,
        resolution,
        *means,
        threshold,
    )
    write_preview(shown, preview_png)


def _write_pairs(
    frames_cache: cache.Cache,
    writer: cache.CacheWriter,
    estimator: _FlowEstimator,
    threshold: float,
    tiles: int,
) -> tuple[np.ndarray, Shown]:
    """Flow and confidence of every pair, written row by row (one frame in memory at a time).

    Returns the mean forward and backward confidence and the pairs kept for the preview.
    """
    frames = frames_cache.dataset("frames")
    pairs, size = len(frames) - 1, frames.shape[1:3]
    datasets = {
        name: writer.frame_dataset(name, pairs, (*size, 2), np.float16) for name in ("forward", "backward")
    }
    for name in ("confidence_forward", "confidence_backward"):
        datasets[name] = writer.frame_dataset(name, pairs, size, np.float16)
    picks = set(preview.evenly_spaced(pairs, max(1, tiles // 3)))
    alpha = estimator.params.photometric_alpha
    shown: Shown = {}
    totals = np.zeros(2)
    previous = frames_cache.read("frames", 0)
    for pair in progress(range(pairs), pairs, f"flow ({estimator.params.backend})"):
        current = frames_cache.read("frames", pair + 1)
        forward, backward = estimator.pair(previous, current)
        conf_fwd = confidence(previous, current, forward, backward, threshold, alpha)
        conf_bwd = confidence(current, previous, backward, forward, threshold, alpha)
        for name, value in zip(datasets, (forward, backward, conf_fwd, conf_bwd), strict=True):
            datasets[name][pair] = value.astype(np.float16)
        totals += (conf_fwd.mean(), conf_bwd.mean())
        if pair in picks:
            shown[pair] = (previous, forward, conf_fwd)
        previous = current
    return totals / pairs, shown


def write_preview(shown: Shown, png: str | Path) -> None:
    """Per sampled pair: the frame, its forward flow (one colour scale for all) and its confidence."""
    largest = max(float(np.hypot(f[..., 0], f[..., 1]).max()) for _, f, _ in shown.values())
    images, labels = [], []
    for pair, (frame, forward, conf) in sorted(shown.items()):
        grey = np.repeat((conf * 255).astype(np.uint8)[..., None], 3, axis=-1)
        images += [frame, flow_to_rgb(forward, largest), grey]
        labels += [f"frame {pair}", f"flow {pair}->{pair + 1} (max {largest:.1f}px)", f"confidence {pair}"]
    preview.save_png(png, preview.contact_sheet(images, labels, tile=192, columns=6 if len(shown) > 1 else 3))
