"""Inference (posetransfer.render): the CPU path renders exactly as the trained float32 model did
frame by frame, and a compiled renderer gets one batch shape (the last batch padded) with the same
frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer import render
from posetransfer.model.networks import body_iuv_tensors
from posetransfer.training import Renderer, TrainConfig, to_uint8

SIDE = 32


@pytest.fixture(scope="module")
def model() -> Renderer:
    torch.manual_seed(0)
    config = TrainConfig(resolution=SIDE, ngf=8, n_blocks=1, ndf=8, texture_size=16)
    atlas = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    return render.prepare(Renderer(config, atlas, torch.rand(3, SIDE, SIDE) * 2 - 1))


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    iuv = rng.integers(0, 256, (5, SIDE, SIDE, 3), dtype=np.uint8)
    iuv[..., 0] = rng.integers(0, 25, (5, SIDE, SIDE))
    return {"labels": rng.uniform(-1, 1, (5, SIDE, SIDE, 6)).astype(np.float32), "body": iuv}


def reference(renderer: Renderer, labels: np.ndarray, body: np.ndarray) -> np.ndarray:
    """One frame at a time, float32, NCHW: the renderer as trained."""
    frames = []
    with torch.no_grad():
        for index in range(len(labels)):
            pose = torch.as_tensor(labels[index : index + 1]).permute(0, 3, 1, 2).contiguous()
            out = renderer(pose, body=body_iuv_tensors(body[index : index + 1]))["image"].float()
            frames.append(to_uint8(out[0]))
    return np.stack(frames)


def test_cpu_render_is_float32_and_exact(model: Renderer, inputs: dict[str, np.ndarray]) -> None:
    expected = reference(model, inputs["labels"], inputs["body"])
    frames = render.render(model, inputs["labels"], batch=2, body=inputs["body"])
    assert frames.dtype == np.uint8 and frames.shape == (5, SIDE, SIDE, 3)
    np.testing.assert_array_equal(frames, expected)


@pytest.mark.slow  # dynamo traces the whole renderer: about 20 s on a quiet CPU
def test_compiled_renderer_pads_the_last_batch(model: Renderer, inputs: dict[str, np.ndarray]) -> None:
    compiled = torch.compile(model, backend="eager", dynamic=False)  # tracing only: fast on the CPU
    shapes = []
    hook = model.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    try:
        frames = render.render(compiled, inputs["labels"], batch=4, body=inputs["body"])
    finally:
        hook.remove()
    assert shapes == [(4, 6, SIDE, SIDE), (4, 6, SIDE, SIDE)]  # 5 frames: 4, then 1 padded to 4
    np.testing.assert_array_equal(frames, render.render(model, inputs["labels"], 4, body=inputs["body"]))
