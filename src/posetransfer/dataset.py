"""A subject's training data: every cache read once into memory, served as adjacent frame pairs.

Reading the caches once (frames, skeletons, 3D labels, IUV, masks, flow, background) keeps the
loader simple and fast: no file is reopened per item, so no HDF5 handle crosses a fork. At 256 px
a 1000-frame subject takes about 1 GB.

Tensors are NCHW float32: images, skeletons and 3D labels in [-1, 1]; masks and confidences in
[0, 1]; IUV as part index (long) and U, V in [0, 1]; flow in pixels at the training resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from posetransfer import cache, iuv

VALIDATION_SHARE = 0.1  # the last 10% of valid frames, contiguous (the paper's 9:1 split)


@dataclass(frozen=True)
class SubjectPaths:
    """The caches of one subject that training reads."""

    frames: Path
    pose2d: Path
    labels3d: Path
    masks: Path
    flow: Path
    background: Path

    @classmethod
    def in_folder(cls, folder: str | Path) -> SubjectPaths:
        folder = Path(folder)
        return cls(
            *(
                folder / f"{name}.h5"
                for name in ("frames", "pose2d", "labels3d", "masks", "flow", "background")
            )
        )


def resize_images(images: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize (N, H, W[, C]) images to size x size (area filter, or nearest for labels)."""
    if images.shape[1] == size:
        return images
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation) for image in images])


def split(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation frame indices: validation is the last 10% of valid frames."""
    index = np.flatnonzero(valid)
    count = max(1, round(len(index) * VALIDATION_SHARE)) if len(index) > 1 else 0
    return index[: len(index) - count], index[len(index) - count :]


class SubjectData:
    """All training inputs and targets of one subject at one resolution, in memory."""

    def __init__(self, paths: SubjectPaths, resolution: int | None = None) -> None:
        with cache.open_cache(paths.frames, "frames") as frames:
            self.fps = float(frames.attrs["fps"])
            rgb = frames.read("frames")
        size = resolution or rgb.shape[1]
        self.resolution = size
        with cache.open_cache(paths.pose2d, "pose2d") as pose:
            skeleton, pose_valid = pose.read("skeleton"), pose.read("valid")
            self.keypoints = pose.read("keypoints")
        with cache.open_cache(paths.labels3d, "labels3d") as labels:
            laplacian, iuv_png, fitted = labels.read("laplacian"), labels.read("iuv"), labels.read("fitted")
        with cache.open_cache(paths.masks, "masks") as masks:
            mask = masks.read("mask")
        with cache.open_cache(paths.flow, "flow") as flow:
            backward = flow.read("backward").astype(np.float32)
            confidence = flow.read("confidence_backward").astype(np.float32)
        with cache.open_cache(paths.background, "background") as background:
            bg = background.read("background")
        scale = size / rgb.shape[1]
        self.keypoints = self.keypoints.copy()
        self.keypoints[..., :2] *= scale
        self.valid = pose_valid & fitted
        self.train_index, self.val_index = split(self.valid)
        self.images = to_signed(resize_images(rgb, size))
        self.pose = pose_label(skeleton, laplacian, size)
        parts, u, v = iuv.from_densepose_png(resize_images(iuv_png, size, nearest=True))
        self.parts, self.uv = parts.astype(np.int64), np.stack([u, v], axis=-1)
        self.mask = resize_images(mask.astype(np.uint8), size, nearest=True).astype(np.float32)
        self.flow_backward = resize_images(backward, size) * scale  # pair i: frame i+1 -> i
        self.confidence = resize_images(confidence, size)
        self.background = to_signed(resize_images(bg[None], size))[0]

    def __len__(self) -> int:
        return len(self.images)

    def pairs(self, index: np.ndarray) -> np.ndarray:
        """Frames t of ``index`` whose predecessor t-1 is valid too: the training pairs (t-1, t)."""
        valid = self.valid
        return np.array([t for t in index if t > 0 and valid[t - 1]], dtype=np.int64)

    def batch(self, frames: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Inputs and targets of the given frames as NCHW tensors."""
        frames = np.asarray(frames)
        return {
            "pose": _nchw(self.pose[frames], device),
            "image": _nchw(self.images[frames], device),
            "parts": torch.as_tensor(self.parts[frames], device=device),
            "uv": _nchw(self.uv[frames], device),
            "mask": torch.as_tensor(self.mask[frames], device=device)[:, None],
        }

    def pair_batch(self, frames: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Batches of frames t-1 and t plus the backward flow t -> t-1 and its confidence."""
        frames = np.asarray(frames)
        current, previous = self.batch(frames, device), self.batch(frames - 1, device)
        return {
            "current": current,
            "previous": previous,
            "flow": _nchw(self.flow_backward[frames - 1], device),
            "confidence": torch.as_tensor(self.confidence[frames - 1], device=device)[:, None],
        }

    def background_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.as_tensor(self.background, device=device).permute(2, 0, 1).contiguous()


def pose_label(skeleton: np.ndarray, laplacian: np.ndarray, size: int) -> np.ndarray:
    """The 6-channel pose label (N, size, size, 6) in [-1, 1]: skeleton image + 3D label."""
    signed = to_signed(resize_images(skeleton, size))
    return np.concatenate([signed, resize_images(laplacian.astype(np.float32), size, nearest=True)], axis=-1)


def to_signed(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def _nchw(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), device=device).permute(0, 3, 1, 2).contiguous()
