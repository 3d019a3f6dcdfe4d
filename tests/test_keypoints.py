"""BODY_25 definitions, the COCO-23 mapping and skeleton drawing."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.keypoints import (
    ANNY_COCO23_NAMES,
    BODY25_COLORS,
    BODY25_LIMBS,
    BODY25_NAMES,
    coco23_to_body25,
    draw_skeleton,
)


def _snake(name: str) -> str:
    """'LBigToe' -> 'left_big_toe', as Anny names its COCO-23 keypoints."""
    side = {"L": "left_", "R": "right_"}.get(name[0], "") if name[1:2].isupper() else ""
    rest = name[1:] if side else name
    return side + "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(rest))


def test_tables_are_consistent() -> None:
    assert len(BODY25_NAMES) == len(set(BODY25_NAMES)) == 25
    assert BODY25_NAMES[1] == "Neck" and BODY25_NAMES[8] == "MidHip" and BODY25_NAMES[24] == "RHeel"
    assert len(BODY25_COLORS) == 25 and all(
        len(c) == 3 and all(0 <= v <= 255 for v in c) for c in BODY25_COLORS
    )
    assert len(BODY25_LIMBS) == 24  # a tree over the 25 keypoints
    assert {k for limb in BODY25_LIMBS for k in limb} == set(range(25))
    assert len(ANNY_COCO23_NAMES) == 23


def test_coco23_to_body25_by_name() -> None:
    coco = np.arange(23 * 3, dtype=np.float64).reshape(23, 3)
    body = coco23_to_body25(coco)
    assert body.shape == (25, 3)
    for i, name in enumerate(BODY25_NAMES):
        if name in ("Neck", "MidHip"):
            continue
        np.testing.assert_array_equal(body[i], coco[ANNY_COCO23_NAMES.index(_snake(name))], err_msg=name)
    idx = ANNY_COCO23_NAMES.index
    np.testing.assert_allclose(body[1], (coco[idx("left_shoulder")] + coco[idx("right_shoulder")]) / 2)
    np.testing.assert_allclose(body[8], (coco[idx("left_hip")] + coco[idx("right_hip")]) / 2)


def test_coco23_to_body25_batches_and_rejects_bad_shapes() -> None:
    coco = np.random.default_rng(0).normal(size=(4, 2, 23, 2))
    body = coco23_to_body25(coco)
    assert body.shape == (4, 2, 25, 2)
    np.testing.assert_array_equal(body[3, 1], coco23_to_body25(coco[3, 1]))
    with pytest.raises(ValueError):
        coco23_to_body25(np.zeros((25, 3)))


def test_draw_skeleton_draws_only_confident_keypoints() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    kp = np.zeros((25, 3))
    kp[:, 0] = np.linspace(20, 140, 25)
    kp[:, 1] = 60.5
    kp[:, 2] = 1.0
    kp[0, 2] = 0.0  # the nose is not confident: nothing drawn around it
    kp[0, :2] = (10.5, 10.5)
    out = draw_skeleton(image, kp, threshold=0.5)
    assert out is not image and (image == 0).all()  # the input is untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[8:13, 8:13] == 0).all()
    # A confident keypoint gets a disc of its OpenPose colour, RGB.
    np.testing.assert_array_equal(out[60, int(kp[24, 0])], BODY25_COLORS[24])
    with pytest.raises(ValueError):
        draw_skeleton(image, kp[:24])
