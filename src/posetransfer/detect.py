"""Person boxes from MediaPipe Pose (the model ships inside the mediapipe wheel)."""

from __future__ import annotations

import os

import cv2
import numpy as np

# MediaPipe logs through glog/absl; keep rule logs to our own lines.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class PersonDetector:
    """Finds the one person of a video frame by frame (MediaPipe Pose, tracking between frames).

    ``box`` returns (x0, y0, x1, y1) in the frame's pixels around the landmarks whose
    visibility is at least ``min_visibility``, or None where no person is found.
    """

    def __init__(
        self,
        min_visibility: float = 0.5,
        max_side: int = 640,
        tracking: bool = True,
        segmentation: bool = False,
    ) -> None:
        import mediapipe as mp  # deferred: importing mediapipe costs ~1 s

        self.min_visibility = min_visibility
        self.max_side = max_side
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=not tracking,
            model_complexity=1,  # the only complexity whose model ships in the wheel
            smooth_landmarks=False,  # raw landmarks: our own One-Euro filter smooths, visibly
            enable_segmentation=segmentation,
            smooth_segmentation=False,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )
        self.world: np.ndarray | None = None  # (33, 4) world landmarks of the last image
        self.segmentation: np.ndarray | None = None  # (H, W) float32 soft mask of the last image

    def __enter__(self) -> PersonDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pose.close()

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(33, 4) landmarks: x, y in the frame's pixels, z (relative), visibility; or None."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = (
            image
            if scale == 1.0
            else cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        )
        result = self._pose.process(small)
        self.segmentation = None
        if result.segmentation_mask is not None:
            mask = np.asarray(result.segmentation_mask, dtype=np.float32)
            self.segmentation = mask if scale == 1.0 else cv2.resize(mask, (width, height))
        self.world = None
        if result.pose_landmarks is None:
            return None
        if result.pose_world_landmarks is not None:
            self.world = np.array(
                [(lm.x, lm.y, lm.z, lm.visibility) for lm in result.pose_world_landmarks.landmark],
                dtype=np.float32,
            )
        points = np.array(
            [(lm.x, lm.y, lm.z, lm.visibility) for lm in result.pose_landmarks.landmark],
            dtype=np.float32,
        )
        points[:, 0] *= width  # normalised coordinates are relative to the (scaled) full frame
        points[:, 1] *= height
        return points

    def box(self, image: np.ndarray) -> np.ndarray | None:
        points = self.landmarks(image)
        if points is None:
            return None
        visible = points[points[:, 3] >= self.min_visibility, :2]
        if len(visible) < 4:  # a few stray points are not a person
            return None
        return np.array([*visible.min(axis=0), *visible.max(axis=0)], dtype=np.float32)
