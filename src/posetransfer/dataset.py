"""A subject's training data, read frame by frame from its HDF5 caches and served as adjacent pairs.

Memory grows with the batch, not with the video: :class:`SubjectData` keeps only per-video
metadata (valid flags, keypoints, the background) and reads the frames a batch needs from the
caches' frame-major chunks, resized to the training resolution in their stored dtypes (uint8
images, skeletons, IUV and masks; float16 3D labels, flow and confidence). Conversion to float
happens in :func:`to_device`, once the batch is on the device. Where all frames fit
``in_memory_mb`` they are read once, in the same compact form, so both modes give the same
batches. :class:`PairBatches` wraps it for a ``torch.utils.data.DataLoader``: each worker process
opens its own HDF5 handles, and the batch order stays a function of (seed, epoch) only.

Tensors from :func:`to_device` are NCHW float32: images, skeletons and 3D labels in [-1, 1]; masks
and confidences in [0, 1]; IUV as part index (long) and U, V in [0, 1]; flow in pixels at the
training resolution.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posetransfer import cache
from posetransfer.model.networks import BODY_REACH, body_iuv_tensors

VALIDATION_SHARE = 0.1  # the last 10% of valid frames, contiguous (the paper's 9:1 split)
MIN_VALID_FRAMES = 3  # two adjacent training frames (one pair for the temporal loss) + one for validation
READ_CHUNK = 64  # frames per read when loading a whole video into memory
IGNORE_INDEX = -100  # F.cross_entropy's default: pixels without a part target
IGNORED_PART = 255  # in a person-shaped IUV target: a person pixel too far from the fitted body to guess
WORKING_DTYPES = {np.dtype(bool): np.uint8, np.dtype(np.float16): np.float32}  # what OpenCV resizes

# Per-frame arrays: cache kind -> (dataset, name in a batch, nearest-neighbour resize)
FRAME_FIELDS: dict[str, tuple[str, str, bool]] = {
    "frames": ("frames", "image", False),
    "pose2d": ("skeleton", "skeleton", False),
    "labels3d": ("laplacian", "laplacian", True),
    "labels3d/iuv": ("iuv", "iuv", True),
    "masks": ("mask", "mask", True),
}
PAIR_FIELDS: dict[str, tuple[str, str]] = {  # flow cache: pair i is frame i -> i+1
    "flow": ("backward", "flow"),
    "flow/confidence": ("confidence_backward", "confidence"),
}


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
    resized = [cv2.resize(image, (size, size), interpolation=interpolation) for image in images]
    return np.stack(resized) if resized else np.zeros((0, size, size, *images.shape[3:]), images.dtype)


def split(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation frame indices: validation is the last 10% of valid frames."""
    index = np.flatnonzero(valid)
    count = max(1, round(len(index) * VALIDATION_SHARE)) if len(index) > 1 else 0
    return index[: len(index) - count], index[len(index) - count :]


def _sorted_read(source: cache.Cache, name: str, frames: np.ndarray) -> np.ndarray:
    """``source[name][frames]`` for any order and repeats (h5py wants increasing unique indices)."""
    unique, inverse = np.unique(frames, return_inverse=True)
    return source.read(name, unique if len(unique) > 1 else slice(int(unique[0]), int(unique[0]) + 1))[
        inverse
    ]


class SubjectData:
    """The training inputs and targets of one subject at one resolution, read as batches need them."""

    def __init__(
        self,
        paths: SubjectPaths,
        resolution: int | None = None,
        in_memory_mb: float = 0,
        uv_target: str | None = "person",
    ) -> None:
        """``uv_target``: the UV loss's target that pair batches carry (:func:`uv_target_iuv`), or None."""
        self.paths, self.uv_target = paths, uv_target
        self._handles: dict[str, cache.Cache] = {}
        self._pid = os.getpid()
        with cache.open_cache(paths.frames, "frames") as frames:
            self.fps = float(frames.attrs["fps"])
            self.num_frames, source_size = frames.dataset("frames").shape[:2]
        self.resolution = size = resolution or source_size
        self.scale = size / source_size
        with cache.open_cache(paths.pose2d, "pose2d") as pose:
            pose_valid = pose.read("valid")
            self.keypoints = pose.read("keypoints").copy()
        self.keypoints[..., :2] *= self.scale
        with cache.open_cache(paths.labels3d, "labels3d") as labels:
            fitted = labels.read("fitted")
        with cache.open_cache(paths.background, "background") as background:
            self.background = to_signed(resize_images(background.read("background")[None], size))[0]
        self.valid = pose_valid & fitted
        self.train_index, self.val_index = split(self.valid)
        self._memory: dict[str, np.ndarray] | None = None
        if self.frame_bytes() * self.num_frames <= in_memory_mb * 2**20:
            self._memory = self._read_all()

    # -- reading ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_frames

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def frame_bytes(self) -> int:
        """Bytes one frame (and its pair's flow) takes in compact form."""
        pixels = self.resolution**2
        return pixels * (3 + 3 + 3 * 2 + 3 + 1) + pixels * (2 * 2 + 2)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own handles
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _cache(self, kind: str) -> cache.Cache:
        if self._pid != os.getpid():  # a forked worker: the parent's handles are not ours
            self._handles, self._pid = {}, os.getpid()
        if kind not in self._handles:
            self._handles[kind] = cache.open_cache(getattr(self.paths, kind), kind)
        return self._handles[kind]

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def _read(self, frames: np.ndarray, flow: bool = True) -> dict[str, np.ndarray]:
        """Compact arrays of ``frames`` (and pair ``frames`` -> ``frames + 1``'s flow), from the caches."""
        out = {}
        for key, (dataset, name, nearest) in FRAME_FIELDS.items():
            stored = _sorted_read(self._cache(key.split("/")[0]), dataset, frames)
            # OpenCV resizes neither bool nor float16: masks become uint8, labels float32 and back
            # (nearest-neighbour copies values, so the round trip is exact).
            working = stored.astype(WORKING_DTYPES.get(stored.dtype, stored.dtype))
            out[name] = resize_images(working, self.resolution, nearest).astype(
                np.float16 if stored.dtype == np.float16 else working.dtype
            )
        if not flow:
            return out
        size = self.resolution
        if self.num_frames < 2:  # no pairs at all: nothing to warp
            out["flow"] = np.zeros((len(frames), size, size, 2), np.float16)
            out["confidence"] = np.zeros((len(frames), size, size), np.float16)
            return out
        pairs = np.minimum(frames, self.num_frames - 2)  # the last frame has no pair; never used
        flow = _sorted_read(self._cache("flow"), "backward", pairs).astype(np.float32)
        out["flow"] = (resize_images(flow, size) * self.scale).astype(np.float16)
        confidence = _sorted_read(self._cache("flow"), "confidence_backward", pairs).astype(np.float32)
        out["confidence"] = resize_images(confidence, size).astype(np.float16)
        return out

    def _read_all(self) -> dict[str, np.ndarray]:
        chunks = [self._read(np.arange(start, min(start + READ_CHUNK, self.num_frames)))
                  for start in range(0, self.num_frames, READ_CHUNK)]  # fmt: skip
        return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}

    def frames(self, frames: np.ndarray, flow: bool = True) -> dict[str, np.ndarray]:
        """Compact arrays of the given frames: image, skeleton, iuv, mask (uint8), laplacian (float16),
        and with ``flow`` the flow / confidence of the pair (frame -> frame - 1 is pair frame - 1;
        see :meth:`pair_batch`)."""
        frames = np.asarray(frames, dtype=np.int64)
        if self._memory is not None:
            skip = () if flow else {name for _, name in PAIR_FIELDS.values()}
            return {key: value[frames] for key, value in self._memory.items() if key not in skip}
        return self._read(frames, flow)

    # -- batches ----------------------------------------------------------------------------
    def pairs(self, index: np.ndarray) -> np.ndarray:
        """Frames t of ``index`` whose predecessor t-1 is valid too: the training pairs (t-1, t)."""
        valid = self.valid
        return np.array([t for t in index if t > 0 and valid[t - 1]], dtype=np.int64)

    def compact_pair_batch(self, frames: np.ndarray) -> dict[str, Any]:
        """Frames t-1 and t in compact form, with the backward flow t -> t-1 and its confidence."""
        frames = np.asarray(frames, dtype=np.int64)
        previous = self.frames(frames - 1)
        flow, confidence = previous.pop("flow"), previous.pop("confidence")
        current = self.frames(frames, flow=False)
        if self.uv_target is not None:
            for compact in (previous, current):
                compact["target_iuv"] = uv_target_iuv(compact["iuv"], compact["mask"], self.uv_target)
        return {"current": current, "previous": previous, "flow": flow, "confidence": confidence}

    def batch(self, frames: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Inputs and targets of the given frames as NCHW tensors on ``device``."""
        compact = self.frames(frames, flow=False)
        return to_device(compact, device)

    def pair_batch(self, frames: np.ndarray, device: torch.device | str = "cpu") -> dict[str, Any]:
        """Batches of frames t-1 and t plus the backward flow t -> t-1 and its confidence."""
        return pair_to_device(self.compact_pair_batch(frames), device)

    def background_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.as_tensor(self.background, device=device).permute(2, 0, 1).contiguous()


class PairBatches(torch.utils.data.Dataset):
    """Map-style dataset for a DataLoader with ``batch_size=None``: index = an array of frames t."""

    def __init__(self, data: SubjectData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, frames: np.ndarray) -> dict[str, Any]:
        return self.data.compact_pair_batch(frames)


def pair_loader(data: SubjectData, schedule: list[np.ndarray], workers: int) -> Iterator[dict[str, Any]]:
    """The compact pair batches of ``schedule`` in order, read by ``workers`` processes (0: this one)."""
    loader = torch.utils.data.DataLoader(
        PairBatches(data),
        batch_size=None,
        sampler=schedule,
        num_workers=workers,
        collate_fn=lambda batch: batch,  # numpy stays numpy, in its stored dtype
        multiprocessing_context="fork" if workers else None,
    )
    yield from loader


def uv_target_iuv(iuv: np.ndarray, mask: np.ndarray, target: str) -> np.ndarray:
    """The UV loss's target (N, H, W, 3) as IUV, parts :data:`IGNORED_PART` where unknown
    (``model.uv_target``): ``person`` (:func:`person_iuv`) or ``body``, the fit itself with person
    pixels it misses ignored, not called background, or the UV loss would pull the rendered person
    to the fit's thinner outline."""
    if target == "person":
        return person_iuv(iuv, mask)
    if target != "body":
        raise ValueError(f"unknown UV target {target!r}")
    out = iuv.copy()
    out[mask.astype(bool) & (iuv[..., 0] == 0), 0] = IGNORED_PART
    return out


def person_iuv(iuv: np.ndarray, mask: np.ndarray, reach: float = BODY_REACH) -> np.ndarray:
    """The fitted body's IUV (N, H, W, 3) reshaped to the person's mask (N, H, W): the UV target.

    The fitted body is a naked, approximate body; the person wears clothes and hair and the fit is
    off by a few pixels. Person pixels outside the body take the part and UV of the nearest body
    pixel (within ``reach`` of the image side; farther ones are :data:`IGNORED_PART`), and body
    pixels outside the mask become background, so the UV generator learns the person's outline.
    """
    out = iuv.copy()
    limit = round(reach * max(iuv.shape[1:3]))  # the same pixels as networks.body_neighbourhood
    for frame, person in zip(out, mask.astype(bool), strict=True):
        body = frame[..., 0] > 0
        if person.sum() < body.sum() / 2:  # a failed segmentation, not a thinner person: keep the fit
            continue
        extra = person & ~body
        if not body.any():
            frame[extra, 0] = IGNORED_PART
            continue
        # Each body pixel is its own label; every other pixel learns the label of the nearest one.
        distance, label = cv2.distanceTransformWithLabels(
            (~body).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        source = np.zeros(label.max() + 1, np.int64)
        source[label[body]] = np.flatnonzero(body)
        flat = frame.reshape(-1, 3)
        near = extra & (distance <= limit)
        flat[np.flatnonzero(near)] = flat[source[label[near]]]
        frame[extra & ~near, 0] = IGNORED_PART
        frame[body & ~person] = 0
    return out


def _nchw(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    tensor = torch.as_tensor(np.ascontiguousarray(array)).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2)


def to_device(compact: dict[str, np.ndarray], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Compact frames -> float tensors on ``device`` (converted there, after the copy)."""
    parts, uv = body_iuv_tensors(compact["iuv"], device)
    target = {}
    if "target_iuv" in compact:  # training pairs: the UV loss's target
        target_parts, target_uv = target_iuv_tensors(compact["target_iuv"], device)
        target = {"target_parts": target_parts, "target_uv": target_uv}
    return {
        **target,
        "pose": pose_channels(_nchw(compact["skeleton"], device), _nchw(compact["laplacian"], device), 1),
        "image": (_nchw(compact["image"], device).float() / 127.5 - 1).contiguous(),
        "parts": parts,
        "uv": uv,
        "mask": torch.as_tensor(compact["mask"]).to(device)[:, None].float(),
    }


def target_iuv_tensors(target: np.ndarray, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`uv_target_iuv` -> the UV loss's target: parts (N, H, W), ignored pixels IGNORE_INDEX; UV."""
    ignored = target[..., :1] == IGNORED_PART
    parts, uv = body_iuv_tensors(np.where(ignored, np.uint8(0), target), device)
    return parts.masked_fill(torch.as_tensor(ignored[..., 0]).to(device), IGNORE_INDEX), uv


def pair_to_device(compact: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {
        "current": to_device(compact["current"], device),
        "previous": to_device(compact["previous"], device),
        "flow": _nchw(compact["flow"], device).float().contiguous(),
        "confidence": torch.as_tensor(compact["confidence"]).to(device)[:, None].float(),
    }


def pose_channels(skeleton: torch.Tensor, laplacian: torch.Tensor, dim: int) -> torch.Tensor:
    """The 6-channel pose label: the uint8 skeleton image in [-1, 1] and the 3D label, along ``dim``."""
    return torch.cat([skeleton.float() / 127.5 - 1, laplacian.float()], dim=dim).contiguous()


def pose_label(skeleton: np.ndarray, laplacian: np.ndarray, size: int) -> np.ndarray:
    """The 6-channel pose label (N, size, size, 6) in [-1, 1] at ``size`` (:func:`pose_channels`)."""
    skeleton = torch.as_tensor(resize_images(skeleton, size))
    laplacian = torch.as_tensor(resize_images(laplacian.astype(np.float32), size, nearest=True))
    return pose_channels(skeleton, laplacian, -1).numpy()


def to_signed(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0
