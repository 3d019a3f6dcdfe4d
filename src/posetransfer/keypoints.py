"""OpenPose BODY_25 keypoints: names, limbs, render colours, the mapping from Anny's COCO-23, drawing.

Keypoint pixel coordinates follow :mod:`posetransfer.raster`'s convention (pixel centres at
integer + 0.5); :func:`draw_skeleton` converts to ``cv2``'s integer-centre convention.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "ANNY_COCO23_NAMES",
    "BODY25_COLORS",
    "BODY25_FROM_COCO23",
    "BODY25_LIMBS",
    "BODY25_NAMES",
    "coco23_to_body25",
    "draw_skeleton",
]

BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye",
    "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip

# OpenPose's BODY_25 render pairs, in its drawing order.
BODY25_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
    (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21),
    (11, 22), (22, 23), (11, 24),
)  # fmt: skip

# OpenPose's BODY_25 render colour of each keypoint, RGB; a limb takes its second keypoint's colour.
BODY25_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
    (85, 255, 0), (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
    (0, 170, 255), (0, 85, 255), (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255),
    (85, 0, 255), (0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
)  # fmt: skip

# Order of ``anny.KeypointsRegressor.coco(model).labels`` (anny 0.6.2): COCO 17, then toes and heels.
ANNY_COCO23_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle", "left_big_toe", "right_big_toe", "left_small_toe",
    "right_small_toe", "left_heel", "right_heel",
)  # fmt: skip

# BODY_25 index -> COCO-23 index, for every BODY_25 keypoint except Neck (1) and MidHip (8).
BODY25_FROM_COCO23: dict[int, int] = {
    0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 9: 12, 10: 14, 11: 16, 12: 11, 13: 13, 14: 15,
    15: 2, 16: 1, 17: 4, 18: 3, 19: 17, 20: 19, 21: 21, 22: 18, 23: 20, 24: 22,
}  # fmt: skip
_NECK, _MID_HIP = 1, 8
_COCO_SHOULDERS, _COCO_HIPS = (5, 6), (11, 12)


def coco23_to_body25(kp: np.ndarray) -> np.ndarray:
    """Anny's COCO-23 keypoints ``(..., 23, C)`` to BODY_25 ``(..., 25, C)``.

    Neck is the mean of the shoulders and MidHip the mean of the hips, channel by channel (for a
    confidence channel, use the minimum of the two instead if that matters to you).
    """
    kp = np.asarray(kp)
    if kp.ndim < 2 or kp.shape[-2] != 23:
        raise ValueError(f"expected (..., 23, C) COCO-23 keypoints, got {kp.shape}")
    dtype = kp.dtype if np.issubdtype(kp.dtype, np.floating) else np.float64
    out = np.empty((*kp.shape[:-2], 25, kp.shape[-1]), dtype=dtype)
    body_idx = np.array(list(BODY25_FROM_COCO23))
    out[..., body_idx, :] = kp[..., list(BODY25_FROM_COCO23.values()), :]
    out[..., _NECK, :] = kp[..., _COCO_SHOULDERS, :].mean(axis=-2)
    out[..., _MID_HIP, :] = kp[..., _COCO_HIPS, :].mean(axis=-2)
    return out


def draw_skeleton(
    image: np.ndarray, kp25: np.ndarray, threshold: float = 0.1, thickness: int | None = None
) -> np.ndarray:
    """Draw BODY_25 keypoints ``(25, 3)`` (x, y, confidence) on a copy of an RGB uint8 image, OpenPose style.

    Keypoints with confidence <= ``threshold`` and limbs touching them are skipped. Line width and
    circle radius scale with the image size like OpenPose's renderer unless ``thickness`` is given.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    kp25 = np.asarray(kp25, dtype=np.float64)
    if kp25.shape != (25, 3):
        raise ValueError(f"kp25 must be (25, 3), got {kp25.shape}")
    out = image.copy()
    scale = np.sqrt(image.shape[0] * image.shape[1]) / 480.0
    thickness = max(1, round(4 * scale)) if thickness is None else thickness
    radius = thickness
    ok = np.isfinite(kp25).all(axis=1) & (kp25[:, 2] > threshold)
    # cv2 puts pixel centres on integers; our keypoints put them at +0.5.
    pts = [
        (round(x - 0.5), round(y - 0.5)) if good else None for (x, y, _), good in zip(kp25, ok, strict=True)
    ]
    for a, b in BODY25_LIMBS:
        if ok[a] and ok[b]:
            cv2.line(out, pts[a], pts[b], BODY25_COLORS[b], thickness, cv2.LINE_AA)
    for i, p in enumerate(pts):
        if p is not None:
            cv2.circle(out, p, radius, BODY25_COLORS[i], -1, cv2.LINE_AA)
    return out
