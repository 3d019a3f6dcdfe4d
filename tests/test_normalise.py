"""Skeleton normalisation: the driving skeleton in the target's height and place."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.errors import NoPersonError
from posetransfer.normalise import normalise_keypoints


def standing_person(floor_y: float, height: float, center_x: float) -> np.ndarray:
    """BODY_25 keypoints (25, 3) of an upright stick figure: nose at the top, ankles on the floor."""
    keypoints = np.zeros((25, 3), np.float32)
    rows = {0: 0.0, 1: 0.15, 2: 0.15, 5: 0.15, 8: 0.5, 9: 0.5, 12: 0.5, 10: 0.75, 13: 0.75, 11: 1.0, 14: 1.0}
    for index, fraction in rows.items():
        side = -1 if index in (2, 9, 10, 11) else 1 if index in (5, 12, 13, 14) else 0
        keypoints[index] = (center_x + side * 0.1 * height, floor_y - height * (1 - fraction), 0.9)
    return keypoints


def two_places(count: int, far: float, close: float, height_far: float, height_close: float, x: float):
    """A person standing first far from the camera, then close: both floors and heights known."""
    half = count // 2
    return np.stack(
        [standing_person(far, height_far, x)] * half + [standing_person(close, height_close, x)] * half
    )


def test_normalisation_maps_driving_heights_and_floor_onto_the_target():
    driving = two_places(40, far=150, close=230, height_far=80, height_close=160, x=90)
    target = two_places(40, far=180, close=200, height_far=120, height_close=150, x=140)
    valid = np.ones(40, bool)
    normalised, scale = normalise_keypoints(driving, valid, target, valid, min_confidence=0.3)
    # Far frames land on the target's far floor at its far height; close frames likewise.
    ankles = normalised[:, [11, 14], 1].max(axis=1)
    heights = ankles - normalised[:, 0, 1]
    np.testing.assert_allclose(ankles[[0, -1]], [180, 200], atol=1e-3)
    np.testing.assert_allclose(heights[[0, -1]], [120, 150], atol=1e-3)
    np.testing.assert_allclose(normalised[:, 8, 0], 140, atol=1e-3)  # centred on the target
    np.testing.assert_allclose(scale[[0, -1]], [1.5, 150 / 160], rtol=1e-6)
    assert np.array_equal(normalised[..., 2], driving[..., 2])  # confidences untouched


def test_normalisation_of_a_video_onto_itself_changes_nothing():
    floors, heights = np.linspace(140, 210, 30), np.linspace(90, 140, 30)  # walking towards the camera
    frames = np.stack([standing_person(f, h, 128) for f, h in zip(floors, heights, strict=True)])
    valid = np.ones(30, bool)
    normalised, scale = normalise_keypoints(frames, valid, frames, valid, min_confidence=0.3)
    np.testing.assert_allclose(normalised, frames, atol=1e-3)
    np.testing.assert_allclose(scale, 1.0, atol=1e-6)


def test_normalisation_without_ankles_uses_neck_and_hips():
    driving = np.stack([standing_person(200, 100, 100)] * 5)
    target = np.stack([standing_person(220, 150, 120)] * 5)
    driving[:, [11, 14], 2] = 0.0  # ankles never seen in the driving video
    valid = np.ones(5, bool)
    normalised, scale = normalise_keypoints(driving, valid, target, valid, min_confidence=0.3)
    np.testing.assert_allclose(scale, 1.5, rtol=1e-5)
    np.testing.assert_allclose(
        normalised[:, 8, :2], target[:, 8, :2], atol=1e-3
    )  # mid-hip lands on the target's


def test_normalisation_without_any_body_is_an_error():
    empty = np.zeros((4, 25, 3), np.float32)
    with pytest.raises(NoPersonError, match="normalisation"):
        normalise_keypoints(empty, np.ones(4, bool), empty, np.ones(4, bool), 0.3)
