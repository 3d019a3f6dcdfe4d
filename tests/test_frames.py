"""The frames stage on videos the suite makes (no person, synthetic person) and on real clips."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import REAL_VIDEOS, moving_squares, real_video

from posetransfer import cache, frames
from posetransfer.errors import NoPersonError, VideoError
from posetransfer.frames import CropBox, FramesParams, crop_and_resize, square_crop
from posetransfer.video import probe


def test_square_crop_is_centred_on_the_union_with_margin():
    boxes = np.array([[100, 50, 140, 250], [120, 60, 180, 240], [np.nan] * 4], np.float32)
    box = square_crop(boxes, margin=0.1)
    assert box.side == 240  # union 80 x 200 -> longer side 200 x 1.2
    assert box.x0 + box.side / 2 == pytest.approx(140, abs=1)
    assert box.y0 + box.side / 2 == pytest.approx(150, abs=1)


def test_crop_pads_where_the_square_leaves_the_image():
    image = np.full((100, 60, 3), 200, np.uint8)
    out = crop_and_resize(image, CropBox(-20, 0, 100), resolution=100, pad_mode="constant")
    assert out.shape == (100, 100, 3)
    assert (out[:, :20] == 0).all() and (out[:, 20:80] == 200).all() and (out[:, 80:] == 0).all()
    edge = crop_and_resize(image, CropBox(-20, 0, 100), resolution=100, pad_mode="edge")
    assert (edge == 200).all()


@pytest.mark.parametrize(("stride", "max_frames", "expected"), [(1, None, 10), (3, None, 4), (2, 3, 3)])
def test_stride_and_max_frames(stride, max_frames, expected):
    params = FramesParams(stride=stride, max_frames=max_frames)
    kept = []
    for index in range(10):
        if frames.select(index, len(kept), params):
            kept.append(index)
    assert len(kept) == expected
    assert kept == list(range(0, 10, stride))[:expected]


def test_video_with_no_person_is_one_line_and_leaves_nothing(tmp_path, make_video):
    video = make_video("empty_room.mp4", moving_squares(8, 160, 160))
    out = tmp_path / "out" / "frames.h5"
    with pytest.raises(NoPersonError, match=r"empty_room.mp4: no person found in any of the 8 frames"):
        frames.run(video, out, tmp_path / "out" / "frames.png", FramesParams(resolution=64))
    assert not out.exists()
    assert not [path for path in tmp_path.rglob("*") if ".tmp" in path.name]


def test_unreadable_video_is_one_line(tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match=r"broken\.mp4: not a readable video"):
        frames.run(video, tmp_path / "f.h5", tmp_path / "f.png", FramesParams())
    assert not (tmp_path / "f.h5").exists()


# --- on the synthetic person, against its ground truth ------------------------------------


def _mask_inside_crop(mask: np.ndarray, crop: np.ndarray) -> float:
    """Share of the person's pixels that fall inside the square crop."""
    x0, y0, side = crop
    ys, xs = np.nonzero(mask)
    inside = (xs >= x0) & (xs < x0 + side) & (ys >= y0) & (ys < y0 + side)
    return inside.mean()


def test_synthetic_video_frames_counts_fps_and_crop(synthetic_clip, tmp_path):
    video, truth = synthetic_clip
    out = tmp_path / "frames.h5"
    frames.run(video, out, tmp_path / "frames.png", FramesParams(resolution=128))
    info = probe(video)
    with cache.open_cache(out, "frames") as cached, cache.open_cache(truth) as gt:
        assert cached.dataset("frames").shape == (info.container_frames, 128, 128, 3)
        assert cached.attrs["fps"] == pytest.approx(info.fps)
        assert cached.attrs["source_frames"] == info.container_frames
        assert cached.read("person_found").all()
        crop = np.array(cached.attrs["crop_box"])
        masks = gt.read("mask")
        for index, mask in enumerate(masks):
            assert _mask_inside_crop(mask, crop) == 1.0, f"frame {index}: person cut by the crop"
        # The crop is tight: the person's full height spans most of the square.
        rows = np.nonzero(masks.any(axis=(0, 2)))[0]
        assert (rows[-1] - rows[0] + 1) / crop[2] > 0.6
        assert cached.attrs["source_sha256"] == cache.file_sha256(video)
    assert (tmp_path / "frames.png").stat().st_size > 10_000


def test_frames_cache_is_byte_identical_across_runs(synthetic_clip, tmp_path):
    video, _ = synthetic_clip
    params = FramesParams(resolution=64, stride=2)
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    frames.run(video, first, tmp_path / "a.png", params)
    frames.run(video, second, tmp_path / "b.png", params)
    assert first.read_bytes() == second.read_bytes()
    with cache.open_cache(first) as cached:
        assert list(cached.read("source_index")) == list(range(0, probe(video).container_frames, 2))


# --- real clips (../shared/data) --------------------------------------------------------------

EXPECTED = {"juggler_a.mp4": (247, 24.0), "dogplay_b.mp4": (289, 30000 / 1001), "squats_c.mp4": (65, 5.0)}


@pytest.fixture(scope="module", params=REAL_VIDEOS)
def real_frames(request, tmp_path_factory):
    video = real_video(request.param)
    out = tmp_path_factory.mktemp(request.param.split(".")[0]) / "frames.h5"
    frames.run(video, out, out.with_suffix(".png"), FramesParams(resolution=256))
    return request.param, video, out


@pytest.mark.realdata
def test_real_video_counts_and_fps_equal_the_container(real_frames):
    name, video, out = real_frames
    count, fps = EXPECTED[name]
    assert cache.describe(out, verify=True).endswith("valid: yes (every chunk checksummed)")
    with cache.open_cache(out, "frames") as cached:
        assert cached.dataset("frames").shape == (count, 256, 256, 3)
        assert cached.attrs["source_frames"] == count == probe(video).container_frames
        assert cached.attrs["fps"] == pytest.approx(fps, rel=1e-6)
        assert cached.read("person_found").mean() > 0.95


@pytest.mark.realdata
def test_real_video_crop_contains_the_person(real_frames):
    """MediaPipe's own segmentation, run independently on the full frames, stays inside the crop."""
    import mediapipe as mp

    from posetransfer.video import read_frames

    name, video, out = real_frames
    with cache.open_cache(out, "frames") as cached:
        crop = np.array(cached.attrs["crop_box"])
        found = cached.read("person_found")
    outside = []
    with mp.solutions.pose.Pose(model_complexity=1, enable_segmentation=True) as pose:
        for index, image in enumerate(read_frames(video)):
            if index % 8 or not found[index]:
                continue
            small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2))
            result = pose.process(small)
            if result.segmentation_mask is None:
                continue
            mask = cv2.resize(result.segmentation_mask, image.shape[1::-1]) > 0.5
            outside.append(1.0 - _mask_inside_crop(mask, crop))
    assert outside, f"{name}: no segmentation to compare with"
    assert np.mean(outside) < 0.01 and np.max(outside) < 0.05, f"{name}: person outside the crop {outside}"


def test_params_round_trip_from_config():
    from posetransfer.config import validate_config

    params = FramesParams.from_config(validate_config({})["frames"])
    assert params == FramesParams()
    assert replace(params, resolution=512).resolution == 512
