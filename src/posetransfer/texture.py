"""The texture stage: the initial 24-part RGB texture, unwrapped from the frames through the IUV.

Channels 0-2 of the paper's hybrid texture start from this atlas: the count-weighted mean colour
of every body pixel of every fitted frame, splatted into its part's chart; texels never seen are
filled (``texture.fill``: push-pull averaging of nearby seen texels, or the part's mean colour).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from posetransfer import cache, iuv, preview
from posetransfer.iuv import NUM_PARTS, check_iuv
from posetransfer.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextureParams:
    """The ``texture`` section of the config."""

    size: int = 200
    fill: str = "push_pull"

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> TextureParams:
        return cls(**section)


# Fitted frames unwrapped at once: a multiple of 32, so the sums equal one call's (TextureSums).
BLOCK_FRAMES = 64


def run(frames_h5: str | Path, labels3d_h5: str | Path, out: str | Path, png: str | Path,
        params: TextureParams) -> None:  # fmt: skip
    """Unwrap every fitted frame through its IUV into the atlas; write the cache and a PNG.

    Frames and IUV images are read ``BLOCK_FRAMES`` at a time: memory does not grow with the video.
    """
    sums = TextureSums(params.size)
    with (
        cache.open_cache(frames_h5, "frames") as frames_cache,
        cache.open_cache(labels3d_h5, "labels3d") as labels,
    ):
        keep = np.flatnonzero(labels.read("fitted"))
        source_sha256 = frames_cache.attrs["source_sha256"]
        blocks = range(0, len(keep), BLOCK_FRAMES)
        for start in progress(blocks, len(blocks), "texture", unit="block"):
            rows = keep[start : start + BLOCK_FRAMES]
            parts, u, v = iuv.from_densepose_png(labels.read("iuv", rows))
            sums.add(frames_cache.read("frames", rows), parts, u, v)
    atlas, count = sums.result(params.fill)
    seen = (count > 0).mean()
    log.info(
        "unwrapped %d frames; %.1f%% of texels seen, the rest filled (%s)", len(keep), 100 * seen, params.fill
    )
    with cache.write_cache(out, "texture", asdict(params), source_sha256) as writer:
        writer.array("atlas", np.round(np.clip(atlas, 0, 1) * 255).astype(np.uint8))
        writer.array("count", count.astype(np.int32))
        writer.attrs.update({"size": params.size, "fill": params.fill, "seen_fraction": float(seen)})
    preview.save_png(png, atlas_image(atlas))
    log.info("wrote %s and %s", out, png)


def unwrap(
    frames: np.ndarray,
    part: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    size: int = 200,
    fill: Literal["push_pull", "mean"] = "push_pull",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean texture of the frames unwrapped through their IUV: ``atlas`` (24, S, S, 3), ``count`` (24, S, S).

    Every body pixel adds its colour to the texel its (I, U, V) falls on (column ``rint(U (S-1))``,
    row ``rint((1-V) (S-1))``); a texel's colour is the mean over all pixels of all frames that hit it,
    so texels seen more often weigh in proportion. Colours are float32 in [0, 1]. Texels never seen
    are filled (``count`` stays 0 there): ``push_pull`` (default) by push-pull pyramid inpainting, a
    smooth blend of the part's nearest seen texels, ``mean`` by the part's mean colour; a part never
    seen at all gets the mean colour of every seen texel (mid grey if nothing was seen).
    """
    if fill not in ("push_pull", "mean"):
        raise ValueError(f"fill must be 'push_pull' or 'mean', got {fill!r}")
    sums = TextureSums(size)
    sums.add(frames, part, u, v)
    return sums.result(fill)


class TextureSums:
    """What :func:`unwrap` accumulates (per-texel colour sums and hits), fed frames in parts.

    Adding the frames in blocks whose lengths are multiples of 32 gives bit-identical results
    to adding them at once: both sum in the same 32-frame steps.
    """

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError(f"size must be at least 2, got {size}")
        self.size = size
        total = NUM_PARTS * size * size
        self.count = np.zeros(total)
        self.sums = np.zeros((total, 3))

    def add(self, frames: np.ndarray, part: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Splat (N, H, W, 3) uint8 frames through their I (N, H, W) and U, V into the sums."""
        frames, part, u, v = np.asarray(frames), np.asarray(part), np.asarray(u), np.asarray(v)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if part.shape != frames.shape[:3]:
            raise ValueError(f"I must be {frames.shape[:3]}, got {part.shape}")
        check_iuv(part, u, v)
        total = len(self.count)
        for start in range(0, len(frames), 32):  # chunks keep the float copies small on long videos
            chunk = slice(start, start + 32)
            texel, colours = _texels(frames[chunk], part[chunk], u[chunk], v[chunk], self.size)
            self.count += np.bincount(texel, minlength=total)
            for c in range(3):
                self.sums[:, c] += np.bincount(texel, colours[:, c], minlength=total)

    def result(self, fill: Literal["push_pull", "mean"] = "push_pull") -> tuple[np.ndarray, np.ndarray]:
        """``atlas`` (24, S, S, 3) float32 and ``count`` (24, S, S) int32, unseen texels filled."""
        seen = self.count > 0
        atlas = np.zeros((len(self.count), 3), dtype=np.float32)
        atlas[seen] = (self.sums[seen] / self.count[seen, None]).astype(np.float32)
        atlas = atlas.reshape(NUM_PARTS, self.size, self.size, 3)
        count = self.count.astype(np.int32).reshape(NUM_PARTS, self.size, self.size)
        _fill_unseen(atlas, count > 0, fill)
        return atlas, count


def _texels(
    frames: np.ndarray, part: np.ndarray, u: np.ndarray, v: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat atlas texel index ``(N,)`` and colour in [0, 1] ``(N, 3)`` of every body pixel."""
    fg = part > 0
    col = np.rint(np.clip(u[fg], 0, 1) * (size - 1)).astype(np.int64)
    row = np.rint((1 - np.clip(v[fg], 0, 1)) * (size - 1)).astype(np.int64)
    texel = ((part[fg].astype(np.int64) - 1) * size + row) * size + col
    return texel, frames[fg].astype(np.float64) / 255.0


def _fill_unseen(atlas: np.ndarray, seen: np.ndarray, fill: str) -> None:
    """Fill texels never seen, in place (see :func:`unwrap`)."""
    overall = atlas[seen].mean(axis=0) if seen.any() else np.full(3, 0.5, np.float32)
    for p in range(NUM_PARTS):
        tile, known = atlas[p], seen[p]
        if not known.any():
            tile[:] = overall
        elif fill == "mean":
            tile[~known] = tile[known].mean(axis=0)
        elif not known.all():
            tile[~known] = _push_pull(tile, known)[~known]


def _push_pull(tile: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Pyramid (push-pull) inpainting of ``tile`` (S, S, 3) from its ``known`` texels.

    Pull: halve the resolution repeatedly, averaging the known texels of each 2x2 block. Push: from
    the coarsest level down, a texel without data takes the bilinearly upsampled coarser estimate.
    Every filled value is a convex blend of nearby known texels, so a constant texture stays exact.
    """
    sums, weights = [tile * known[..., None]], [known.astype(np.float32)]
    while max(weights[-1].shape) > 1:
        v, w = sums[-1], weights[-1]
        h, wd = (w.shape[0] + 1) // 2, (w.shape[1] + 1) // 2
        v = np.pad(v, ((0, 2 * h - v.shape[0]), (0, 2 * wd - v.shape[1]), (0, 0)))
        w = np.pad(w, ((0, 2 * h - w.shape[0]), (0, 2 * wd - w.shape[1])))
        sums.append(v.reshape(h, 2, wd, 2, 3).sum(axis=(1, 3)))
        weights.append(w.reshape(h, 2, wd, 2).sum(axis=(1, 3)))
    estimate = sums[-1] / np.maximum(weights[-1], 1e-12)[..., None]
    for v, w in zip(sums[-2::-1], weights[-2::-1], strict=True):
        h, wd = w.shape
        size = (2 * estimate.shape[1], 2 * estimate.shape[0])
        up = cv2.resize(estimate.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[:h, :wd]
        own = v / np.maximum(w, 1e-12)[..., None]
        estimate = np.where((w > 0)[..., None], own, up)
    return estimate.astype(np.float32)


def atlas_image(atlas: np.ndarray) -> np.ndarray:
    """``(6 S, 4 S, 3)`` uint8 picture of a texture ``(24, S, S, 3)`` (floats in [0, 1]) for people.

    DensePose's ``texture_atlas_200.png`` layout: 6 rows, 4 columns, part ``6 * i + j + 1`` in column
    ``i``, row ``j`` (the torso halves, hands and feet fill the first column).
    """
    atlas = np.asarray(atlas)
    if (
        atlas.ndim != 4
        or atlas.shape[0] != NUM_PARTS
        or atlas.shape[3] != 3
        or atlas.shape[1] != atlas.shape[2]
    ):
        raise ValueError(f"atlas must be ({NUM_PARTS}, S, S, 3), got {atlas.shape}")
    s = atlas.shape[1]
    tiles = np.rint(np.clip(atlas, 0, 1) * 255).astype(np.uint8)
    # (i, j, S, S, 3) -> rows j, columns i.
    return tiles.reshape(4, 6, s, s, 3).transpose(1, 2, 0, 3, 4).reshape(6 * s, 4 * s, 3)
