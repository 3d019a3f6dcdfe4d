"""The background stage: the static scene behind the person, to initialise the learnable background.

Each pixel's background colour is the median of its colour over the frames where the (dilated)
person mask leaves it uncovered: a median, not a mean, so that shadows, mask misses and
passers-by in a minority of frames do not leak in. Pixels the person never uncovers are filled
by OpenCV inpainting from their seen surroundings. The dilation keeps the soft edge of the
person (hair, motion blur, mask errors) out of the median.

The median runs over bands of rows, so memory is bounded (``band_bytes``) whatever the length of
the video: frames and masks are read band by band (they may be HDF5 datasets).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from posetransfer import cache, preview
from posetransfer.errors import CacheError, ConfigError
from posetransfer.progress import progress

log = logging.getLogger(__name__)

INPAINT_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
REFERENCE_RESOLUTION = 256  # dilate_px is given at this resolution
_UNSEEN = np.uint16(1 << 15)  # sorts after every 8-bit colour


class FrameArray(Protocol):
    """An (N, H, W, ...) array sliceable by rows: numpy or an h5py dataset."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __getitem__(self, index: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class BackgroundParams:
    """The ``background`` section of the config (see workflow/schemas/config.schema.yaml)."""

    dilate_px: int = 6
    inpaint: str = "telea"
    inpaint_radius: int = 5

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> BackgroundParams:
        params = cls(**section)
        if params.inpaint not in INPAINT_METHODS:
            raise ConfigError(
                f"background.inpaint: unknown method {params.inpaint!r}, expected one of "
                f"{sorted(INPAINT_METHODS)}"
            )
        return params

    def dilate_at(self, resolution: int) -> int:
        """The dilation radius in pixels at ``resolution`` (``dilate_px`` is given at 256)."""
        return round(self.dilate_px * resolution / REFERENCE_RESOLUTION)


def _check_inputs(frames: FrameArray, masks: FrameArray) -> None:
    if len(frames.shape) != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if tuple(masks.shape) != tuple(frames.shape[:3]):
        raise ValueError(f"masks {masks.shape} do not match frames {frames.shape}")
    if masks.dtype != np.bool_:
        raise ValueError(f"expected bool masks, got {masks.dtype}")
    if frames.shape[0] < 1:
        raise ValueError("need at least one frame")


def _dilated_band(masks: FrameArray, row0: int, row1: int, radius: int) -> np.ndarray:
    """Masks of rows [row0, row1) dilated by a disc of ``radius``, reading ``radius`` rows around."""
    height = masks.shape[1]
    top, bottom = max(0, row0 - radius), min(height, row1 + radius)
    band = np.asarray(masks[:, top:bottom], dtype=np.uint8)
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        band = np.stack([cv2.dilate(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) for m in band])
    return band[:, row0 - top : row0 - top + (row1 - row0)].astype(bool)


def masked_median(values: np.ndarray, covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median over frames of (N, h, W, 3) uint8 ``values`` where not ``covered`` (N, h, W).

    Returns the median (h, W, 3) uint8 (0 where never uncovered; the mean of the two middle
    values, rounded half up, for an even count) and the count of uncovered frames (h, W) int32.
    Sorting uint16 with covered entries set past 255 puts the uncovered values first.
    """
    keyed = values.astype(np.uint16)
    keyed[covered] = _UNSEEN
    keyed.sort(axis=0)
    count = (~covered).sum(axis=0, dtype=np.int32)
    low = np.clip((count - 1) // 2, 0, None)[None, ..., None]
    high = np.clip(count // 2, 0, len(values) - 1)[None, ..., None]
    channels = values.shape[-1]
    low, high = np.repeat(low, channels, axis=-1), np.repeat(high, channels, axis=-1)
    total = np.take_along_axis(keyed, low, 0)[0].astype(np.uint32) + np.take_along_axis(keyed, high, 0)[0]
    median = ((total + 1) // 2).astype(np.uint8)
    median[count == 0] = 0
    return median, count


def _band_rows(frames: FrameArray, band_bytes: int) -> int:
    """Rows per band so the band's sort buffer (uint16 per value) stays under ``band_bytes``."""
    count, _, width, channels = frames.shape
    return max(1, band_bytes // max(1, count * width * channels * 2))


def estimate(
    frames: FrameArray,
    masks: FrameArray,
    params: BackgroundParams,
    band_bytes: int = 128 << 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background (H, W, 3) uint8, seen (H, W) bool and seen_count (H, W) int32 from a video.

    ``frames`` (N, H, W, 3) uint8 and ``masks`` (N, H, W) bool (True on the person) may be numpy
    arrays or HDF5 datasets. Rows are processed in bands whose uint16 sort buffer is at most
    ``band_bytes``; peak memory is about 1.6 times that (the band as read, plus its masks), so
    1000 frames of 512 x 512 need about 200 MB, read in bands of 43 rows.
    """
    _check_inputs(frames, masks)
    _, height, width, _ = frames.shape
    if params.inpaint not in INPAINT_METHODS:
        raise ConfigError(f"background.inpaint: unknown method {params.inpaint!r}")
    radius = params.dilate_at(height)
    rows = _band_rows(frames, band_bytes)
    background = np.zeros((height, width, 3), np.uint8)
    seen_count = np.zeros((height, width), np.int32)
    bands = range(0, height, rows)
    for row0 in progress(bands, len(bands), "background bands"):
        row1 = min(height, row0 + rows)
        covered = _dilated_band(masks, row0, row1, radius)
        background[row0:row1], seen_count[row0:row1] = masked_median(
            np.asarray(frames[:, row0:row1]), covered
        )
    seen = seen_count > 0
    return fill_unseen(background, seen, params), seen, seen_count


def fill_unseen(background: np.ndarray, seen: np.ndarray, params: BackgroundParams) -> np.ndarray:
    """Inpaint the pixels never seen from the seen ones (unchanged where all were seen)."""
    if seen.all():
        return background
    if not seen.any():
        log.warning("the person covers every pixel in every frame: the background is plain grey")
        return np.full_like(background, 128)
    unseen = (~seen).astype(np.uint8) * 255
    filled = cv2.inpaint(background, unseen, params.inpaint_radius, INPAINT_METHODS[params.inpaint])
    return np.where(seen[..., None], background, filled)


def run(
    frames_h5: str | Path,
    masks_h5: str | Path,
    out: str | Path,
    preview_png: str | Path,
    params: BackgroundParams,
) -> None:
    """Estimate the background of ``frames_h5`` behind the person of ``masks_h5``; write ``out``."""
    with cache.open_cache(frames_h5, "frames") as frames_cache, cache.open_cache(masks_h5, "masks") as masks:
        frames, mask = frames_cache.dataset("frames"), masks.dataset("mask")
        if tuple(mask.shape) != tuple(frames.shape[:3]):
            raise CacheError(
                f"mask has shape {tuple(mask.shape)}, the frames cache {frames_h5} has "
                f"{tuple(frames.shape[:3])}: rebuild the masks",
                masks_h5,
            )
        source_sha256 = frames_cache.attrs["source_sha256"]
        resolution = int(frames_cache.attrs["resolution"])
        background, seen, seen_count = estimate(frames, mask, params)
        first_frame = frames_cache.read("frames", 0)
    seen_fraction = float(seen.mean())
    with cache.write_cache(out, "background", asdict(params), source_sha256) as writer:
        writer.array("background", background)
        writer.array("seen", seen)
        writer.array("seen_count", seen_count)
        writer.attrs.update(
            {
                "resolution": resolution,
                "seen_fraction": seen_fraction,
                "dilate_px_at_resolution": params.dilate_at(resolution),
            }
        )
    log.info(
        "wrote %s: %.1f%% of the background seen (median of %.1f frames per pixel), the rest inpainted",
        out,
        100 * seen_fraction,
        seen_count.mean(),
    )
    write_preview(background, seen, seen_count, first_frame, preview_png)


def write_preview(
    background: np.ndarray, seen: np.ndarray, seen_count: np.ndarray, frame: np.ndarray, png: str | Path
) -> None:
    """The background, how often each pixel was seen (never: red), and the first frame."""
    scale = max(1, int(seen_count.max()))
    count = np.repeat((seen_count * 255 // scale).astype(np.uint8)[..., None], 3, axis=-1)
    count[~seen] = (255, 0, 0)
    images = [background, count, frame]
    labels = ["background", f"seen count (max {scale}; red never)", "frame 0"]
    preview.save_png(png, preview.contact_sheet(images, labels, tile=256, columns=3))
