"""The masks stage: a soft person mask per frame and the binary mask at a documented threshold.

Backend ``mediapipe`` is MediaPipe Pose's segmentation output (complexity 1, shipped in the
wheel). Pose's mask follows the whole body, where the selfie-segmentation model is made for a
head and shoulders close to the camera. Frames where Pose finds no person get an empty mask.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posetransfer import cache, preview
from posetransfer.detect import PersonDetector
from posetransfer.errors import ConfigError
from posetransfer.progress import format_ranges, progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MasksParams:
    """The ``masks`` section of the config."""

    backend: str = "mediapipe"
    threshold: float = 0.5

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> MasksParams:
        return cls(**section)


def segment(detector: PersonDetector, frame: np.ndarray) -> np.ndarray:
    """The soft person mask (H, W) float32 in [0, 1] of one (H, W, 3) uint8 RGB frame."""
    soft = np.zeros(frame.shape[:2], np.float32)
    if detector.landmarks(frame) is not None and detector.segmentation is not None:
        soft[:] = np.clip(detector.segmentation, 0.0, 1.0)
    return soft


def segment_mediapipe(frames: np.ndarray) -> np.ndarray:
    """Soft person masks (N, H, W) float32 in [0, 1] for (N, H, W, 3) uint8 RGB frames."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    with PersonDetector(max_side=max(frames.shape[1:3]), segmentation=True) as detector:
        return np.stack([segment(detector, frame) for frame in progress(frames, len(frames), "masks")])


Shown = list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]  # (index, frame, soft, binary)


def run(
    frames_h5: str | Path, out: str | Path, preview_png: str | Path, params: MasksParams, tiles: int = 12
) -> None:
    """Masks for every frame of ``frames_h5``, written to ``out``, with a contact sheet.

    Frames are read, segmented and written a few at a time: memory does not grow with the video.
    """
    if params.backend != "mediapipe":
        raise ConfigError(f"masks.backend: unknown backend {params.backend!r}")
    with cache.open_cache(frames_h5, "frames") as frames_cache:
        count, resolution = frames_cache.dataset("frames").shape[:2]
        source_sha256 = frames_cache.attrs["source_sha256"]
        with cache.write_cache(out, "masks", asdict(params), source_sha256) as writer:
            area, empty, shown = _write_masks(frames_cache, writer, params, tiles)
            writer.attrs.update(
                {"backend": params.backend, "threshold": params.threshold, "resolution": resolution}
            )
    log.info("mean person area %.1f%% of the frame", 100 * area / (count * resolution * resolution))
    if empty:
        log.warning("no person in the mask on %d frames: %s", len(empty), format_ranges(empty))
    log.info("wrote %s", out)
    write_preview(shown, preview_png)


def _write_masks(
    frames_cache: cache.Cache, writer: cache.CacheWriter, params: MasksParams, tiles: int
) -> tuple[int, list[int], Shown]:
    """Segment and append frame by frame: (person pixels, frames without one, preview tiles)."""
    count, resolution = frames_cache.dataset("frames").shape[:2]
    picks = set(preview.evenly_spaced(count, max(1, tiles // 2)))
    area, empty, shown = 0, [], []
    with (
        PersonDetector(max_side=resolution, segmentation=True) as detector,
        writer.rows("soft", count, (resolution, resolution), np.uint8) as soft_rows,
        writer.rows("mask", count, (resolution, resolution), bool) as mask_rows,
    ):
        for index, frame in enumerate(progress(frames_cache.iter_rows("frames"), count, "masks")):
            soft = segment(detector, frame)
            soft_u8, binary = np.round(soft * 255).astype(np.uint8), soft > params.threshold
            soft_rows.append(soft_u8[None])
            mask_rows.append(binary[None])
            area += int(binary.sum())
            if not binary.any():
                empty.append(index)
            if index in picks:
                shown.append((index, frame, soft_u8, binary))
    return area, empty, shown


def overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with the person tinted and the mask's outline drawn in white."""
    image = frame.copy()
    image[mask] = (0.6 * image[mask] + 0.4 * np.array([0, 255, 120])).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, (255, 255, 255), 1)
    return image


def write_preview(shown: Shown, path: str | Path) -> None:
    """Contact sheet: for each (index, frame, soft, binary) shown, the overlay and the soft mask."""
    images, labels = [], []
    for index, frame, soft, binary in shown:
        images += [overlay(frame, binary), np.repeat(soft[..., None], 3, axis=-1)]
        labels += [f"frame {index}", f"soft {index}"]
    preview.save_png(path, preview.contact_sheet(images, labels, tile=192, columns=4))
