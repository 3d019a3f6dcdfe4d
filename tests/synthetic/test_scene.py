"""The synthetic scene: determinism, ground-truth consistency, framing, occlusion, variety."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from posetransfer.synthetic.motion import Motion, MotionParams
from posetransfer.synthetic.scene import SceneSpec, SyntheticFrame, SyntheticScene

SPEC = SceneSpec(width=160, height=120, num_frames=96, fps=24.0, seed=3)
# Frames of the 4 s script: facing the camera, marching, in profile, at the bottom of the squat.
INDICES = (0, 20, 56, 68)
ARMS = slice(2, 8)  # BODY_25 RShoulder .. LWrist


@pytest.fixture(scope="module")
def scene(anny_cache_dir: Path) -> SyntheticScene:
    return SyntheticScene(SPEC, anny_cache_dir, device="cpu")


@pytest.fixture(scope="module")
def frames(scene: SyntheticScene) -> dict[int, SyntheticFrame]:
    return {index: scene.frame(index) for index in INDICES}


def _same(a: SyntheticFrame, b: SyntheticFrame) -> bool:
    return all(
        np.array_equal(getattr(a, name), getattr(b, name))
        for name in ("rgb", "mask", "face", "bary", "keypoints", "vertices")
    )


def test_frame_arrays_are_consistent(scene: SyntheticScene, frames: dict[int, SyntheticFrame]) -> None:
    assert len(scene) == 96
    faces = scene.faces
    assert faces.dtype == np.int32 and faces.shape == (27420, 3)
    assert scene.face_uv.shape == faces.shape and scene.face_uv.max() < len(scene.uv)
    for frame in frames.values():
        assert frame.rgb.shape == (120, 160, 3) and frame.rgb.dtype == np.uint8
        assert frame.face.dtype == np.int32 and frame.bary.dtype == np.float32
        assert frame.keypoints.shape == (25, 3) and frame.vertices.shape == (faces.max() + 1, 3)
        np.testing.assert_array_equal(frame.mask, frame.face >= 0)
        b = frame.bary[frame.mask]
        assert (b >= -1e-5).all() and (b.sum(axis=1) <= 1 + 1e-5).all()
        assert (frame.bary[~frame.mask] == 0).all()
        assert set(np.unique(frame.keypoints[:, 2])) <= {0.0, 1.0}


def test_mask_pixels_see_the_posed_mesh(scene: SyntheticScene, frames: dict[int, SyntheticFrame]) -> None:
    """Barycentric points of the frame's own vertices project back onto their pixel centres."""
    frame = frames[56]
    rows, cols = np.nonzero(frame.mask)
    tri = frame.vertices[scene.faces[frame.face[frame.mask]]].astype(np.float64)
    b = frame.bary[frame.mask].astype(np.float64)
    points = (1 - b.sum(1))[:, None] * tri[:, 0] + b[:, :1] * tri[:, 1] + b[:, 1:] * tri[:, 2]
    np.testing.assert_allclose(scene.camera.project(points), np.stack([cols + 0.5, rows + 0.5], 1), atol=2e-3)


def test_same_seed_is_deterministic_in_any_order(
    scene: SyntheticScene, frames: dict[int, SyntheticFrame], anny_cache_dir: Path
) -> None:
    assert _same(scene.frame(68), frames[68])
    fresh = SyntheticScene(SPEC, anny_cache_dir, device="cpu")
    assert _same(fresh.frame(56), frames[56])  # rendered first in this scene


def test_background_is_static_and_person_is_drawn(
    scene: SyntheticScene, frames: dict[int, SyntheticFrame]
) -> None:
    for frame in frames.values():
        np.testing.assert_array_equal(frame.rgb[~frame.mask], scene.background[~frame.mask])
        assert np.abs(frame.rgb[frame.mask].astype(int) - scene.background[frame.mask]).mean() > 10


def test_full_body_in_view_grounded_and_tall_enough(frames: dict[int, SyntheticFrame]) -> None:
    for index, frame in frames.items():
        rows = np.nonzero(frame.mask.any(axis=1))[0]
        cols = np.nonzero(frame.mask.any(axis=0))[0]
        assert (rows[-1] - rows[0] + 1) / 120 >= 0.4, index
        assert rows[0] > 0 and rows[-1] < 119 and cols[0] > 0 and cols[-1] < 159, index  # not cut off
        # A planted foot: the lowest vertex is on the floor (z = 0), neither floating nor sinking.
        assert abs(float(frame.vertices[:, 2].min())) < 0.015, index


def test_keypoints_lie_on_the_person(frames: dict[int, SyntheticFrame]) -> None:
    for index, frame in frames.items():
        kp = frame.keypoints
        assert ((kp[:, 0] >= 0) & (kp[:, 0] < 160) & (kp[:, 1] >= 0) & (kp[:, 1] < 120)).all(), index
        # Distance (px) from each visible keypoint to the nearest person pixel.
        distance = cv2.distanceTransform((~frame.mask).astype(np.uint8), cv2.DIST_L2, 5)
        visible = kp[:, 2] > 0.5
        cols, rows = kp[visible, 0].astype(int), kp[visible, 1].astype(int)
        assert (distance[rows, cols] <= 1.5).all(), index


def test_occlusion_hides_the_far_side_in_profile(frames: dict[int, SyntheticFrame]) -> None:
    assert frames[0].keypoints[:, 2].all()  # facing the camera, everything is visible
    profile = frames[56].keypoints[:, 2]
    assert profile[0] == 1  # the nose
    # One side's shoulder, elbow and ear are behind the body, the other side's are visible.
    right, left = profile[[2, 3, 17]], profile[[5, 6, 18]]
    assert {tuple(right), tuple(left)} == {(0, 0, 0), (1, 1, 1)}


def test_another_seed_looks_different(
    scene: SyntheticScene, frames: dict[int, SyntheticFrame], anny_cache_dir: Path
) -> None:
    other = SyntheticScene(SceneSpec(width=160, height=120, seed=4), anny_cache_dir, device="cpu")
    assert other.phenotype != scene.phenotype and other.outfit != scene.outfit
    frame = other.frame(0)
    assert np.abs(frame.rgb.astype(int) - frames[0].rgb).mean() > 10
    assert not np.allclose(frame.vertices, frames[0].vertices, atol=1e-3)


def test_motion_loops_continuously() -> None:
    params = MotionParams.sample(np.random.default_rng(0))
    labels = ["root", "spine05", "neck01", "head"] + [
        f"{bone}.{side}"
        for bone in ("upperarm01", "lowerarm01", "upperleg01", "lowerleg01", "foot")
        for side in "LR"
    ]
    motion = Motion(params, labels)
    np.testing.assert_allclose(motion.deltas(0.0), motion.deltas(params.loop_seconds), atol=1e-9)
    # Smooth: a frame step at 24 fps changes no rotation entry by more than 0.3 (about 17 degrees).
    steps = np.diff(motion.sequence(np.arange(0, 4.0, 1 / 24)), axis=0)
    assert np.abs(steps).max() < 0.3
    # The script reaches a profile view and a squat.
    assert motion.weights(2.5)["yaw"] == pytest.approx(1.0) and motion.weights(2.85)["squat"] > 0.99
    with pytest.raises(ValueError):
        Motion(params, ["root"])
