"""What a user should know about an input that does not stop the workflow (issue 14).

Stages log these warnings and record them in their cache (``cache.add_warnings``); the subject's
report lists them. Here: checks on the 2D keypoints that the person is filmed as the method
needs (the whole body in view).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from posetransfer.progress import format_ranges

ANKLES = (11, 14)  # BODY_25
# Warn when the ankles are out of view on more than this share of the frames with a person.
LEGS_OUT_SHARE = 0.5


def picture_in_crop(frames_attrs: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): where the source picture lies in the cropped frames' pixels.

    Outside it the crop is padding (black, or repeated edge pixels), not part of the video.
    """
    x0, y0, side = (float(value) for value in frames_attrs["crop_box"])
    width, height = (float(value) for value in frames_attrs["source_size"])
    scale = float(frames_attrs["resolution"]) / side
    return -x0 * scale, -y0 * scale, (width - x0) * scale, (height - y0) * scale


def legs_out_of_view(
    keypoints: np.ndarray,
    valid: np.ndarray,
    picture: tuple[float, float, float, float],
    min_confidence: float,
) -> np.ndarray:
    """Frames with a person where neither ankle is seen inside the picture: (N,) bool."""
    x0, y0, x1, y1 = picture
    ankles = keypoints[:, ANKLES]
    inside = (ankles[..., 0] >= x0) & (ankles[..., 0] < x1) & (ankles[..., 1] >= y0) & (ankles[..., 1] < y1)
    seen = inside & (ankles[..., 2] >= min_confidence)
    return valid & ~seen.any(axis=1)


def keypoint_warnings(
    keypoints: np.ndarray,
    valid: np.ndarray,
    picture: tuple[float, float, float, float],
    min_confidence: float,
) -> list[str]:
    """Warnings about the person's 2D keypoints: frames without a person, legs out of view."""
    warnings = []
    missing = np.flatnonzero(~valid)
    if len(missing):
        warnings.append(
            f"pose2d: no person on {len(missing)} frames (marked invalid): {format_ranges(missing)};"
            " they are left out of training"
        )
    legs_out = legs_out_of_view(keypoints, valid, picture, min_confidence)
    if valid.any() and legs_out.sum() > LEGS_OUT_SHARE * valid.sum():
        warnings.append(
            f"pose2d: the legs are out of view (no ankle inside the picture) on {int(legs_out.sum())} of"
            f" {int(valid.sum())} frames with a person; the body fit can only guess them: film the whole body"
        )
    return warnings
