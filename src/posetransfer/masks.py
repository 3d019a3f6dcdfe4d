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


def segment_mediapipe(frames: np.ndarray) -> np.ndarray:
    """Soft person masks (N, H, W) float32 in [0, 1] for (N, H, W, 3) uint8 RGB frames."""
    from posetransfer.detect import PersonDetector

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    soft = np.zeros(frames.shape[:3], np.float32)
    with PersonDetector(max_side=max(frames.shape[1:3]), segmentation=True) as detector:
        for index in progress(range(len(frames)), len(frames), "masks"):
            if detector.landmarks(frames[index]) is not None and detector.segmentation is not None:
                soft[index] = np.clip(detector.segmentation, 0.0, 1.0)
    return soft


def run(
    frames_h5: str | Path, out: str | Path, preview_png: str | Path, params: MasksParams, tiles: int = 12
) -> None:
    """Masks for every frame of ``frames_h5``, written to ``out``, with a contact sheet."""
    if params.backend != "mediapipe":
        raise ConfigError(f"masks.backend: unknown backend {params.backend!r}")
    with cache.open_cache(frames_h5, "frames") as frames_cache:
        frames = frames_cache.read("frames")
        source_sha256 = frames_cache.attrs["source_sha256"]
    soft = segment_mediapipe(frames)
    soft_u8 = np.round(soft * 255).astype(np.uint8)
    binary = soft > params.threshold
    empty = np.flatnonzero(~binary.any(axis=(1, 2)))
    log.info("mean person area %.1f%% of the frame", 100 * binary.mean())
    if len(empty):
        log.warning("no person in the mask on %d frames: %s", len(empty), format_ranges(empty))
    resolution = frames.shape[1]
    with cache.write_cache(out, "masks", asdict(params), source_sha256) as writer:
        writer.array("soft", soft_u8)
        writer.array("mask", binary)
        writer.attrs.update(
            {"backend": params.backend, "threshold": params.threshold, "resolution": resolution}
        )
    log.info("wrote %s", out)
    write_preview(frames, soft_u8, binary, preview_png, tiles)


def overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with the person tinted and the mask's outline drawn in white."""
    image = frame.copy()
    image[mask] = (0.6 * image[mask] + 0.4 * np.array([0, 255, 120])).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, (255, 255, 255), 1)
    return image


def write_preview(
    frames: np.ndarray, soft: np.ndarray, binary: np.ndarray, path: str | Path, tiles: int
) -> None:
    """Contact sheet: for evenly spaced frames, the overlay and the soft mask side by side."""
    picks = preview.evenly_spaced(len(frames), max(1, tiles // 2))
    images, labels = [], []
    for index in picks:
        images += [overlay(frames[index], binary[index]), np.repeat(soft[index][..., None], 3, axis=-1)]
        labels += [f"frame {index}", f"soft {index}"]
    preview.save_png(path, preview.contact_sheet(images, labels, tile=192, columns=4))
