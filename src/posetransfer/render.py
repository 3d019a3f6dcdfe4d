"""Inference: a trained model renders frames from any pose labels, in batches (no flow needed).

``load`` rebuilds the renderer from the plain-dict checkpoint (``model.pt``); ``pose_labels`` reads
the 6-channel pose label (skeleton + 3D label) of a subject's caches; ``render`` turns labels into
uint8 RGB frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from posetransfer import cache
from posetransfer.dataset import pose_label
from posetransfer.errors import CacheError
from posetransfer.training import Renderer, TrainConfig, load_checkpoint, to_uint8


def load(model_path: str | Path, device: str = "cpu") -> tuple[Renderer, dict]:
    """The trained renderer (eval mode) and the checkpoint's ``meta`` (resolution, fps)."""
    state = load_checkpoint(Path(model_path))
    if "meta" not in state:
        raise CacheError("not a final model (no meta); use model.pt, not last.pt", model_path)
    config = TrainConfig(**state["config"])
    weights = state["models"]["renderer"]
    resolution = int(state["meta"]["resolution"])
    if config.variant == "pose_to_image":
        atlas, background = np.zeros((24, 2, 2, 3), np.uint8), torch.zeros(3, resolution, resolution)
    else:
        size = weights["texture.texture"].shape[-1]
        atlas, background = np.zeros((24, size, size, 3), np.uint8), torch.zeros(3, resolution, resolution)
    renderer = Renderer(config, atlas, background)
    renderer.load_state_dict(weights)
    return renderer.to(device).eval(), state["meta"]


def pose_labels(subject_dir: str | Path, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, R, R, 6) float32 pose labels in [-1, 1] and the valid flags, from a subject's caches."""
    subject_dir = Path(subject_dir)
    with cache.open_cache(subject_dir / "pose2d.h5", "pose2d") as pose:
        skeleton, valid = pose.read("skeleton"), pose.read("valid")
    with cache.open_cache(subject_dir / "labels3d.h5", "labels3d") as labels:
        laplacian, fitted = labels.read("laplacian"), labels.read("fitted")
    label = pose_label(skeleton, laplacian, resolution)
    return label, valid & fitted


@torch.no_grad()
def render(
    renderer: Renderer,
    labels: np.ndarray,
    batch: int = 8,
    device: str = "cpu",
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Render (N, R, R, 6) pose labels to (N, R, R, 3) uint8 frames, ``batch`` at a time.

    ``background``: (1 or N, R, R, 3) uint8 images the person is rendered over instead of the
    model's learned background (Fig. 13); not for ``pose_to_image``, which has none.
    """
    if labels.ndim != 4 or labels.shape[-1] != 6:
        raise ValueError(f"pose labels must be (N, H, W, 6), got {labels.shape}")
    if background is not None and len(background) not in (1, len(labels)):
        raise ValueError(f"background must hold 1 or {len(labels)} images, got {len(background)}")
    frames = []
    for start in range(0, len(labels), batch):
        chunk = torch.as_tensor(labels[start : start + batch], device=device).permute(0, 3, 1, 2)
        backdrop = None
        if background is not None:
            backdrop = background if len(background) == 1 else background[start : start + batch]
            backdrop = torch.as_tensor(backdrop, device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        images = renderer(chunk.contiguous(), background=backdrop)["image"].float()
        frames += [to_uint8(image) for image in images]
    return np.stack(frames)
