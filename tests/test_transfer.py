"""Pose transfer: placing the posed body, background replacement, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from posetransfer import transfer, video
from posetransfer.body3d import project
from posetransfer.model.networks import body_iuv_tensors
from posetransfer.training import PRESETS, Renderer, TrainConfig


def test_place_on_skeleton_recovers_a_known_offset():
    rng = np.random.default_rng(0)
    K = np.array([[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]])
    joints = rng.normal(0, 0.4, (5, 23, 3)) + np.array([0.0, 0.0, 3.0])
    offsets = np.array([[0.1, -0.2, 0.5], [0.0, 0.0, 0.0], [-0.3, 0.1, -0.5], [0.2, 0.2, 1.0], [0, 0, 0]])
    moved = torch.as_tensor(joints + offsets[:, None])
    keypoints = project(moved, 300.0, (128.0, 128.0)).numpy()
    weights = np.ones((5, 23))
    weights[4] = 0.0  # an unseen frame: interpolated from its neighbour
    found = transfer.place_on_skeleton(joints, keypoints, weights, K, ridge=0.0)
    np.testing.assert_allclose(found[:4], offsets[:4], atol=1e-6)
    np.testing.assert_allclose(found[4], found[3])


def small_renderer() -> Renderer:
    config = TrainConfig(**{**PRESETS["smoke"], "resolution": 32, "texture_size": 8})
    atlas = np.full((24, 8, 8, 3), 128, np.uint8)
    torch.manual_seed(0)
    return Renderer(config, atlas, torch.zeros(3, 32, 32)).eval()


def test_background_replacement_shows_the_new_scene_where_the_person_is_not():
    renderer = small_renderer()
    labels = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 6)).astype(np.float32)
    black = np.zeros((1, 32, 32, 3), np.uint8)
    white = np.full((1, 32, 32, 3), 255, np.uint8)
    body = np.zeros((2, 32, 32, 3), np.uint8)  # the posed body's IUV: part 5 in a block
    body[:, 8:24, 10:20] = (5, 100, 150)
    on_black = transfer.render_frames(renderer, labels, black, body=body).astype(float)
    on_white = transfer.render_frames(renderer, labels, white, body=body).astype(float)
    with torch.no_grad():
        pose = torch.as_tensor(labels).permute(0, 3, 1, 2)
        probs = renderer(pose, body=body_iuv_tensors(body))["logits"].softmax(dim=1)
    p_background = probs[:, 0].numpy()[..., None]  # Eq. 3: out = fg (1 - P0) + bg P0
    np.testing.assert_allclose(on_white - on_black, 255 * p_background.repeat(3, -1), atol=1.5)


def test_backdrops_from_an_image_file_or_a_video_streamed(tmp_path):
    import cv2

    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :, 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "scene.png"), image)
    backdrop = transfer.backdrops(str(tmp_path / "scene.png"), tmp_path, resolution=16)
    assert backdrop.shape == (1, 16, 16, 3) and (backdrop[..., 0] == 200).all()  # RGB
    assert transfer.next_backdrops(backdrop, 4) is backdrop  # one image for every frame
    scenes = [np.full((60, 80, 3), 40 * i, np.uint8) for i in range(3)]
    video.write_h264(tmp_path / "scene.mp4", scenes, fps=10)
    backdrop = transfer.backdrops(str(tmp_path / "scene.mp4"), tmp_path, resolution=16)
    chunks = [transfer.next_backdrops(backdrop, 2) for _ in range(3)]  # read as the chunks need them
    assert all(chunk.shape == (2, 16, 16, 3) for chunk in chunks)
    np.testing.assert_allclose(np.concatenate(chunks)[:, 8, 8, 0], [0, 40, 80, 0, 40, 80], atol=3)  # repeats
    with pytest.raises(transfer.ConfigError, match=r"transfer\.background: no such file"):
        transfer.backdrops(str(tmp_path / "missing.png"), tmp_path, resolution=16)


def test_cli_transfer_reports_a_missing_model_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "posetransfer", "transfer", "--model", str(tmp_path / "nothing"),
         "--driving", str(tmp_path / "dance.mp4"), "--out", str(tmp_path / "out.mp4")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"posetransfer: error: {tmp_path / 'nothing'}: --model: no trained model here "
        "(expected a model folder or its model.pt)"
    )
    assert not (tmp_path / "out.mp4").exists()


def test_transfer_help_shows_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "posetransfer", "transfer", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--driving VIDEO" in result.stdout and "Example:" in result.stdout
