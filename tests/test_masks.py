"""masks: MediaPipe's person mask against the synthetic truth, threshold, preview."""

import numpy as np
import pytest
from conftest import truth_in_crop

from posetransfer import cache, masks
from posetransfer.errors import ConfigError


@pytest.fixture(scope="module")
def synthetic_masks(synthetic_frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("masks") / "masks.h5"
    masks.run(synthetic_frames, out, out.with_suffix(".png"), masks.MasksParams(threshold=0.5))
    return out


def test_masks_match_the_truth(synthetic_masks, synthetic_clip, synthetic_frames):
    _, truth = truth_in_crop(synthetic_clip[1], synthetic_frames)
    with cache.open_cache(synthetic_masks, "masks") as cached:
        predicted = cached.read("mask")
        assert cached.attrs["resolution"] == 256
    for index, (mask, true) in enumerate(zip(predicted, truth, strict=True)):
        iou = (mask & true).sum() / (mask | true).sum()
        assert iou >= 0.9, f"frame {index}: mask IoU {iou:.3f}"


def test_binary_mask_is_the_soft_mask_over_the_threshold(synthetic_masks):
    with cache.open_cache(synthetic_masks) as cached:
        soft, binary = cached.read("soft"), cached.read("mask")
    assert soft.dtype == np.uint8 and binary.dtype == bool
    # Equal to soft > 0.5 up to the 8-bit rounding of the stored soft mask.
    differ = binary != (soft > 127)
    assert np.isin(soft[differ], (127, 128)).all() and binary.any()
    assert synthetic_masks.with_suffix(".png").stat().st_size > 10_000


def test_unknown_backend_is_a_config_error(synthetic_frames, tmp_path):
    with pytest.raises(ConfigError, match=r"masks\.backend"):
        masks.run(synthetic_frames, tmp_path / "m.h5", tmp_path / "m.png", masks.MasksParams(backend="x"))
