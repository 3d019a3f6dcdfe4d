"""The texture atlas: unwrapping frames through their IUV and its DensePose-layout picture."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer import texture


def test_unwrap_averages_colours_per_texel() -> None:
    part = np.zeros((2, 4, 4), np.uint8)
    u, v = np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.float32)
    part[:, 1, 2] = 7
    u[:, 1, 2], v[:, 1, 2] = 0.5, 0.25  # texel column rint(0.5 * 9), row rint(0.75 * 9) at S = 10
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[0, 1, 2], frames[1, 1, 2] = (10, 20, 30), (30, 40, 50)
    atlas, count = texture.unwrap(frames, part, u, v, size=10, fill="mean")
    assert atlas.shape == (24, 10, 10, 3) and count.shape == (24, 10, 10)
    assert count.sum() == 2 and count[6, 7, 4] == 2
    np.testing.assert_allclose(atlas[6, 7, 4], np.array([20, 30, 40]) / 255, atol=1e-6)
    np.testing.assert_allclose(atlas[6], np.broadcast_to(atlas[6, 7, 4], (10, 10, 3)))  # part mean
    np.testing.assert_allclose(atlas[0], atlas[6])  # never-seen parts: mean of all seen texels


def test_atlas_image_layout_follows_densepose() -> None:
    atlas = np.zeros((24, 8, 8, 3), np.float32)
    atlas[:, :, :, 0] = (np.arange(24) / 255.0)[:, None, None]
    atlas[:, 0, 0, 1] = 1.0  # mark each tile's top-left texel
    image = texture.atlas_image(atlas)
    assert image.shape == (48, 32, 3) and image.dtype == np.uint8
    for p in range(24):
        col, row = divmod(p, 6)  # part 6 i + j + 1 in column i, row j
        tile = image[row * 8 : row * 8 + 8, col * 8 : col * 8 + 8]
        assert (tile[..., 0] == p).all() and tile[0, 0, 1] == 255 and tile[1, 1, 1] == 0
    with pytest.raises(ValueError):
        texture.atlas_image(atlas[:23])
