"""masks: MediaPipe's person mask against the synthetic truth, threshold, preview."""

from dataclasses import asdict

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


def test_streamed_masks_are_byte_identical_to_one_write(synthetic_masks, synthetic_frames, tmp_path):
    """run() segments and appends frame by frame; the file equals writing whole arrays at once."""
    params = masks.MasksParams(threshold=0.5)
    with cache.open_cache(synthetic_frames, "frames") as frames:
        soft = masks.segment_mediapipe(frames.read("frames"))
        source_sha256, resolution = frames.attrs["source_sha256"], int(frames.attrs["resolution"])
    whole = tmp_path / "whole.h5"
    with cache.write_cache(whole, "masks", asdict(params), source_sha256) as writer:
        writer.array("soft", np.round(soft * 255).astype(np.uint8))
        writer.array("mask", soft > params.threshold)
        writer.attrs.update({"backend": "mediapipe", "threshold": 0.5, "resolution": resolution})
    assert synthetic_masks.read_bytes() == whole.read_bytes()
