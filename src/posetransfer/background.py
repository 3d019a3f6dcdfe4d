"""The background stage: the static scene behind the person, to initialise the learnable background.

Each pixel's background colour is the median of its colour over the frames where the (dilated)
person mask leaves it uncovered: a median, not a mean, so that shadows, mask misses and
passers-by in a minority of frames do not leak in. Pixels the person never uncovers are filled
by OpenCV inpainting from their seen surroundings. The dilation keeps the soft edge of the
person (hair, motion blur, mask errors) out of the median.

The median runs over bands of rows, so memory is bounded (``band_bytes``) whatever the length of
the video: frames and masks (HDF5 datasets) are read once, a block of frames at a time, and
rewritten band-major to scratch files beside the output, from which each band is read back.
"""

from __future__ import annotations

import logging
import tempfile
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


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A (H, W) bool mask dilated by a disc of ``radius`` pixels (nothing outside the image)."""
    if radius <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    dilated = cv2.dilate(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return dilated.astype(bool)


class _BandFiles:
    """The video split into bands of rows, each band's frames one after another in its own file.

    One pass over the frames (read ``block`` at a time) writes them; then each band reads back
    as one contiguous (N, rows, W, 3) array. Reading bands straight from the frame-major cache
    would decompress every frame once per band.
    """

    def __init__(self, folder: Path, height: int, rows: int) -> None:
        self.bands = [(row0, min(height, row0 + rows)) for row0 in range(0, height, rows)]
        self._paths = [(folder / f"band{i}.rgb", folder / f"band{i}.covered") for i in range(len(self.bands))]

    def write(self, frames: FrameArray, masks: FrameArray, radius: int, block: int = 32) -> None:
        handles = [(open(a, "wb"), open(b, "wb")) for a, b in self._paths]  # noqa: SIM115 (closed below)
        try:
            count = frames.shape[0]
            starts = range(0, count, block)
            for start in progress(starts, len(starts), "background pass 1", unit="block"):
                images = np.asarray(frames[start : start + block])
                covered = [_dilate(mask, radius) for mask in np.asarray(masks[start : start + block])]
                for image, cover in zip(images, covered, strict=True):
                    for (row0, row1), (rgb, cov) in zip(self.bands, handles, strict=True):
                        rgb.write(image[row0:row1].tobytes())
                        cov.write(cover[row0:row1].tobytes())
        finally:
            for rgb, cov in handles:
                rgb.close()
                cov.close()

    def read(self, band: int, count: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Band ``band``'s (N, rows, W, 3) uint8 values and (N, rows, W) covered flags."""
        row0, row1 = self.bands[band]
        rgb, cov = self._paths[band]
        values = np.fromfile(rgb, np.uint8).reshape(count, row1 - row0, width, 3)
        covered = np.fromfile(cov, np.bool_).reshape(count, row1 - row0, width)
        rgb.unlink()
        cov.unlink()
        return values, covered


def masked_median(values: np.ndarray, covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median over frames of (N, h, W, 3) uint8 ``values`` where not ``covered`` (N, h, W).

    Returns the median (h, W, 3) uint8 (0 where never uncovered; the mean of the two middle
    values, rounded half up, for an even count) and the count of uncovered frames (h, W) int32.
    Sorting uint16 with covered entries set past 255 puts the uncovered values first.
    """
    keyed = values.astype(np.uint16)
    np.copyto(keyed, _UNSEEN, where=covered[..., None])  # no index arrays, unlike keyed[covered]
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
    scratch_dir: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background (H, W, 3) uint8, seen (H, W) bool and seen_count (H, W) int32 from a video.

    ``frames`` (N, H, W, 3) uint8 and ``masks`` (N, H, W) bool (True on the person) may be numpy
    arrays or HDF5 datasets. Rows are processed in bands whose uint16 sort buffer is at most
    ``band_bytes``; peak memory is about 1.6 times that (the band as read, plus its masks), so
    1000 frames of 512 x 512 need about 200 MB, in bands of 43 rows. The frames are read once,
    a block at a time, and rewritten band-major to files in ``scratch_dir`` (default: the system's
    temporary folder; as large as the video uncompressed), from which each band is read back.
    """
    _check_inputs(frames, masks)
    count, height, width, _ = frames.shape
    if params.inpaint not in INPAINT_METHODS:
        raise ConfigError(f"background.inpaint: unknown method {params.inpaint!r}")
    background = np.zeros((height, width, 3), np.uint8)
    seen_count = np.zeros((height, width), np.int32)
    with tempfile.TemporaryDirectory(prefix=".background-", dir=scratch_dir) as folder:
        bands = _BandFiles(Path(folder), height, _band_rows(frames, band_bytes))
        bands.write(frames, masks, params.dilate_at(height))
        for band in progress(range(len(bands.bands)), len(bands.bands), "background bands", unit="band"):
            row0, row1 = bands.bands[band]
            values, covered = bands.read(band, count, width)
            background[row0:row1], seen_count[row0:row1] = masked_median(values, covered)
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
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        background, seen, seen_count = estimate(frames, mask, params, scratch_dir=Path(out).parent)
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
