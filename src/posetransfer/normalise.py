"""Skeleton normalisation for pose transfer: the driving 2D skeleton in the target's height and place.

Everybody-Dance-Now style. In each video the lowest ankle's image height over time gives a far
(5th percentile) and a close (95th percentile) floor position, and the body height (nose to lowest
ankle, 90th percentile, so squats and bends do not count) near each. A driving frame whose ankle is
at fraction ``s`` between its far and close positions is scaled by the target/driving height ratio
interpolated at ``s`` about its ankle, and moved so that its ankle lands at the same fraction of the
target's range; horizontally its mid-hip is moved by the difference of the two videos' median
mid-hip positions. Videos that never show an ankle and the nose use the neck to mid-hip distance
instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from posetransfer.errors import NoPersonError

log = logging.getLogger(__name__)

NOSE, NECK, MID_HIP, ANKLES = 0, 1, 8, (11, 14)  # BODY_25


@dataclass(frozen=True)
class FloorStats:
    """Where a video's person stands (image y of the floor contact) and how tall they appear."""

    far: float  # floor y of the farthest position (5th percentile)
    close: float  # floor y of the closest position (95th percentile)
    height_far: float  # body height in pixels near the far position
    height_close: float
    center_x: float  # median mid-hip x


def _floor_and_height(
    keypoints: np.ndarray, valid: np.ndarray, min_confidence: float, use_ankles: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the floor y (NaN where unseen) and the body height (NaN where unseen)."""
    seen = (keypoints[..., 2] >= min_confidence) & valid[:, None]
    y = keypoints[..., 1]
    if use_ankles:
        bottom = np.where(seen[:, ANKLES], y[:, ANKLES], -np.inf).max(axis=1)
        bottom[~seen[:, ANKLES].any(axis=1)] = np.nan
        height = np.where(seen[:, NOSE], bottom - y[:, NOSE], np.nan)
    else:
        bottom = np.where(seen[:, MID_HIP], y[:, MID_HIP], np.nan)
        height = np.where(seen[:, NECK], bottom - y[:, NECK], np.nan)
    height[~(height > 1.0)] = np.nan
    return bottom, height


def floor_stats(
    keypoints: np.ndarray, valid: np.ndarray, min_confidence: float, use_ankles: bool
) -> FloorStats:
    """The floor positions and heights of one video's (N, 25, 3) BODY_25 keypoints."""
    bottom, height = _floor_and_height(keypoints, valid, min_confidence, use_ankles)
    both = np.isfinite(bottom) & np.isfinite(height)
    if not both.any():
        raise NoPersonError("no frame shows the body's top and bottom keypoints for normalisation")
    floor, tall = bottom[both], height[both]
    far, close = float(np.percentile(floor, 5)), float(np.percentile(floor, 95))
    band = max(0.2 * (close - far), 1.0)  # frames this close to each end measure its height
    height_far = float(np.percentile(tall[floor <= far + band], 90))
    height_close = float(np.percentile(tall[floor >= close - band], 90))
    hips = keypoints[:, MID_HIP][(keypoints[:, MID_HIP, 2] >= min_confidence) & valid]
    center_x = float(np.median(hips[:, 0])) if len(hips) else float(np.median(keypoints[both, :, 0]))
    return FloorStats(far, close, height_far, height_close, center_x)


def _interpolate_gaps(values: np.ndarray, fallback: float) -> np.ndarray:
    known = np.flatnonzero(np.isfinite(values))
    if not len(known):
        return np.full(len(values), fallback)
    return np.interp(np.arange(len(values)), known, values[known])


def normalise_keypoints(
    driving: np.ndarray,
    driving_valid: np.ndarray,
    target: np.ndarray,
    target_valid: np.ndarray,
    min_confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The driving (N, 25, 3) keypoints in the target's proportions and place, and the per-frame scale."""
    for name, array in (("driving", driving), ("target", target)):
        if array.ndim != 3 or array.shape[1:] != (25, 3):
            raise ValueError(f"{name} keypoints must be (N, 25, 3) BODY_25, got {array.shape}")
    use_ankles = all(
        np.isfinite(_floor_and_height(k, v, min_confidence, True)).all(axis=0).any()
        for k, v in ((driving, driving_valid), (target, target_valid))
    )
    source = floor_stats(driving, driving_valid, min_confidence, use_ankles)
    goal = floor_stats(target, target_valid, min_confidence, use_ankles)
    bottom, _ = _floor_and_height(driving, driving_valid, min_confidence, use_ankles)
    bottom = _interpolate_gaps(bottom, source.far)
    span = source.close - source.far
    # s: where the floor is between far (0) and close (1); beyond them floors extrapolate, scales do not.
    s = (bottom - source.far) / span if span > 1.0 else np.zeros(len(bottom))
    inside = np.clip(s, 0.0, 1.0)
    ratio_far, ratio_close = goal.height_far / source.height_far, goal.height_close / source.height_close
    scale = (1 - inside) * ratio_far + inside * ratio_close
    anchor_from = np.stack([np.full(len(s), source.center_x), bottom], axis=-1)
    anchor_to = np.stack([np.full(len(s), goal.center_x), goal.far + s * (goal.close - goal.far)], axis=-1)
    result = driving.copy()
    result[..., :2] = anchor_to[:, None] + scale[:, None, None] * (driving[..., :2] - anchor_from[:, None])
    log.info(
        "normalised by %s: scale %.3f..%.3f, floor y %.1f..%.1f -> %.1f..%.1f px",
        "ankles and nose" if use_ankles else "mid-hip and neck", scale.min(), scale.max(),
        source.far, source.close, goal.far, goal.close,
    )  # fmt: skip
    return result.astype(np.float32), scale
