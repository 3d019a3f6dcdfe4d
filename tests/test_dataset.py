"""The UV loss's person-shaped target (dataset.person_iuv) on small hand-made frames."""

from __future__ import annotations

import numpy as np

from posetransfer.dataset import IGNORE_INDEX, IGNORED_PART, person_iuv, target_iuv_tensors


def _frame(parts: list[list[int]]) -> np.ndarray:
    """An IUV frame whose U is 10 * column and V is 10 * row (so copied pixels are traceable)."""
    parts = np.array(parts, np.uint8)
    rows, cols = np.indices(parts.shape)
    return np.stack([parts, 10 * cols, 10 * rows], axis=-1).astype(np.uint8)[None]


def test_person_pixels_take_the_nearest_body_pixel_and_the_rest_is_background():
    iuv = _frame([[0, 0, 0, 0, 0],
                  [0, 2, 2, 0, 0],
                  [0, 2, 2, 0, 0]])  # fmt: skip
    mask = np.array([[[0, 0, 0, 0, 0],
                      [0, 0, 1, 1, 0],
                      [0, 0, 1, 1, 0]]], np.uint8)  # fmt: skip
    target = person_iuv(iuv, mask, reach=1.0)[0]
    assert target[..., 0].tolist() == [[0, 0, 0, 0, 0], [0, 0, 2, 2, 0], [0, 0, 2, 2, 0]]
    assert tuple(target[1, 3]) == (2, 20, 10)  # the IUV of its nearest body pixel, (1, 2)
    assert tuple(target[2, 3]) == (2, 20, 20)
    assert tuple(target[1, 1]) == (0, 0, 0)  # body outside the mask: background, UV cleared


def test_person_pixels_beyond_reach_are_ignored_and_a_failed_mask_keeps_the_fit():
    iuv = _frame([[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    far = np.array([[[1, 0, 0, 0, 0, 0, 0, 0, 0, 1]]], np.uint8)
    target = person_iuv(iuv, far, reach=0.5)[0]
    assert target[0, 9, 0] == IGNORED_PART and target[0, 0, 0] == 2
    parts, _ = target_iuv_tensors(target[None], "cpu")
    assert parts[0, 0, 9] == IGNORE_INDEX and parts[0, 0, 0] == 2
    empty = np.zeros_like(far)  # a segmentation that found nobody: the fit stays the target
    assert np.array_equal(person_iuv(iuv, empty), iuv)
