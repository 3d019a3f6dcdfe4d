"""The evaluation's reference rows: the real person over the background, and the seen frames."""

from __future__ import annotations

import numpy as np

from posetransfer import evaluate


def test_real_person_renderer_keeps_the_masked_pixels_and_fills_the_rest_with_the_background():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[:, 2:5, 3:6] = 1
    background = np.full((8, 8, 3), 7, np.uint8)
    drawn = evaluate.real_person_renderer(background)({"image": image, "mask": mask})
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert np.array_equal(drawn[mask > 0], image[mask > 0]) and (drawn[mask == 0] == 7).all()


def test_seen_frames_spread_over_the_training_split():
    train = np.arange(10, 110)
    seen = evaluate.seen_frames(train, 5)
    assert seen.tolist() == [10, 35, 60, 84, 109]  # first and last included, evenly spaced
    assert evaluate.seen_frames(train[:3], 5).tolist() == [10, 11, 12]
