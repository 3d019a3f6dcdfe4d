"""TensorBoard event files: readable by TensorBoard's own reader, no duplicate steps, no effect on results."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from posetransfer import pretrain
from posetransfer.tracking import EVENT_FILE_GLOB, TrainingLog


def read(folder) -> EventAccumulator:
    """The run as TensorBoard shows it (its loader, with orphaned-step purging on)."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def rng_states() -> tuple:
    return random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state().numpy().tobytes()


def test_scalars_and_images_are_read_back_by_tensorboard(tmp_path):
    torch.manual_seed(1)
    before = rng_states()
    grid = np.zeros((32, 48, 3), np.uint8)
    grid[:, :24] = (255, 0, 0)
    with TrainingLog(tmp_path / "tensorboard") as board:
        for step in range(1, 6):
            board.scalars(step, {"loss/total": 1.0 / step, "train/lr": 2e-4})
        board.image("samples", 5, grid)
    assert rng_states() == before  # logging draws no random numbers
    run = read(tmp_path / "tensorboard")
    assert set(run.Tags()["scalars"]) == {"loss/total", "train/lr"}
    total = run.Scalars("loss/total")
    assert [event.step for event in total] == [1, 2, 3, 4, 5]
    assert [event.value for event in total] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    (image,) = run.Images("samples")
    assert (image.step, image.width, image.height) == (5, 48, 32)
    with pytest.raises(ValueError, match="samples"):
        TrainingLog(tmp_path / "other").image("samples", 1, grid.astype(np.float32))


def test_a_resumed_run_shows_each_step_once(tmp_path):
    folder = tmp_path / "tensorboard"
    with TrainingLog(folder) as board:  # killed after step 8; its checkpoint was at step 5
        for step in range(1, 9):
            board.scalars(step, {"loss/total": 1.0})
    with TrainingLog(folder, start_step=5) as board:  # resumed from that checkpoint
        for step in range(6, 11):
            board.scalars(step, {"loss/total": 2.0})
    events = read(folder).Scalars("loss/total")
    assert [event.step for event in events] == list(range(1, 11))
    assert [event.value for event in events] == [1.0] * 5 + [2.0] * 5


def test_a_fresh_run_replaces_the_earlier_runs_events(tmp_path):
    folder = tmp_path / "tensorboard"
    with TrainingLog(folder) as board:
        board.scalars(1, {"loss/old": 1.0})
    with TrainingLog(folder) as board:
        board.scalars(1, {"loss/new": 1.0})
    assert len(list(folder.glob(EVENT_FILE_GLOB))) == 1
    assert read(folder).Tags()["scalars"] == ["loss/new"]


def test_steps_per_second_needs_two_calls(tmp_path):
    with TrainingLog(tmp_path) as board:
        assert board.rate(1) is None
        assert board.rate(3) > 0
        assert board.rate(3) is None  # no step made


def test_pretraining_logs_to_tensorboard_and_weights_do_not_change(synthetic_subject_dir, tmp_path):
    config = pretrain.PretrainConfig(epochs=2, batch=4, resolution=64, ngf=8, n_blocks=2)
    pretrain.run([synthetic_subject_dir], tmp_path / "with/uv.pt", config, "cpu")
    pretrain.run([synthetic_subject_dir], tmp_path / "without/uv.pt", config, "cpu", tensorboard=False)
    assert (tmp_path / "with/uv.pt").read_bytes() == (tmp_path / "without/uv.pt").read_bytes()
    assert not (tmp_path / "without/tensorboard").exists()
    run = read(tmp_path / "with/tensorboard")
    assert {"loss/total", "loss/parts", "loss/uv", "train/lr", "train/steps_per_second"} <= set(
        run.Tags()["scalars"]
    )
    steps = [event.step for event in run.Scalars("loss/total")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    history = torch.load(tmp_path / "with/uv.pt", weights_only=False)["history"]
    assert [event.value for event in run.Scalars("loss/total")] == pytest.approx(
        [h["total"] for h in history]
    )
    samples = run.Images("samples/parts_uv")
    assert len(samples) == 2 and samples[-1].step == steps[-1]
