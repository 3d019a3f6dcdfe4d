"""SLURM requests that follow the input: each rule's memory and time from the subject's size.

A subject's size is its frame count and side (``frames.resolution``); the count comes from
``frames.h5`` once it exists, else from the video container (no decoding), with ``frames.stride``
and ``frames.max_frames`` applied. Each rule's cost is a fixed part plus a part per frame, the
latter scaled by the frame's pixels where the stage works on pixels. The constants are peaks and
seconds measured from ``benchmarks/{subject}/{rule}.tsv`` (README, "Running on a cluster"), on the
shared 2-core machine under load, so the seconds are already pessimistic; requests add a margin.
Training's time follows its number of steps (the preset's epochs times the pairs per epoch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REFERENCE_SIDE = 256  # the constants' frames are 256 x 256 (the synthetic video's: 640 x 480)
MEMORY_MARGIN = 1.5  # requests are the measured peak times this ...
TIME_MARGIN = 2.0  # ... and the measured seconds times this
MIN_MB, MIN_MINUTES = 1000, 10


@dataclass(frozen=True)
class Cost:
    """A stage's measured peak memory (MB) and seconds: fixed, per frame of 256 x 256 px (scaled by
    the frame's pixels), per frame whatever its size (work on keypoints and meshes), and, for
    memory, per frame size alone (``mb_per_size``: the buffers of a stage that streams, for a frame
    of 256 x 256 px, whatever the video's length)."""

    base_mb: float
    mb_per_frame: float
    base_s: float
    s_per_frame: float
    mb_per_frame_any_size: float = 0.0
    s_per_frame_any_size: float = 0.0
    mb_per_size: float = 0.0


# Measured (see the module docstring; tests/test_resources.py lists every measurement): 60 frames
# of juggler_a.mp4, the 96-frame synthetic subject (640 x 480 video) and its driving video, the
# whole real clips (65-289 frames) at 256 px, and bench/scale.py's loops of juggler_a.mp4 to 300,
# 1,000 and 3,000 frames at 256 and 512 px. The preprocessing stages stream: their peak does not
# grow with the frames (background keeps one band of rows of every frame, at most 128 MB), only
# with the frame's size, and so does transfer (32 frames at a time). The body fit optimises all
# frames at once, with a few kB of each. Frames, pose2d and masks work on the source video or a
# model's own input size: their time is per frame.
COSTS: dict[str, Cost] = {
    "frames": Cost(310, 0.0, 30, 0.0, s_per_frame_any_size=0.2, mb_per_size=12),
    "pose2d": Cost(290, 0.0, 30, 0.0, s_per_frame_any_size=0.2, mb_per_size=30),
    "masks": Cost(370, 0.0, 30, 0.0, s_per_frame_any_size=0.2, mb_per_size=15),
    "flow": Cost(145, 0.0, 90, 0.25, mb_per_size=12),
    "background": Cost(380, 0.0, 10, 0.03, mb_per_size=15),
    "body3d": Cost(1150, 0.0, 60, 0.0, mb_per_frame_any_size=0.1, s_per_frame_any_size=0.5),
    "labels3d": Cost(1050, 0.0, 60, 0.1, s_per_frame_any_size=0.1, mb_per_size=15),
    "texture": Cost(130, 0.0, 15, 0.03, mb_per_size=110),
    "synthesize": Cost(1100, 0.5, 60, 1.5),
    "truth_labels": Cost(950, 0.5, 30, 1.0),
    "evaluate": Cost(1500, 0.0, 60, 1.0),
    "transfer": Cost(1500, 0.0, 60, 0.1, s_per_frame_any_size=0.3, mb_per_size=60),
    "subject_report": Cost(300, 0.0, 10, 0.0),
}


@dataclass(frozen=True)
class Request:
    mem_mb: int
    runtime: int  # minutes


def request(rule: str, frames: int, pixels: int, attempt: int = 1) -> Request:
    """Memory (MB) and time (minutes) to ask for ``rule`` on ``frames`` frames of ``pixels`` each.

    ``attempt`` (Snakemake's retry count) scales both: a job killed at a limit asks for more.
    """
    cost = COSTS[rule]
    pixels = pixels / REFERENCE_SIDE**2
    peak_mb = cost.base_mb + cost.mb_per_size * pixels
    peak_mb += frames * (cost.mb_per_frame * pixels + cost.mb_per_frame_any_size)
    seconds = cost.base_s + frames * (cost.s_per_frame * pixels + cost.s_per_frame_any_size)
    return _request(peak_mb, seconds, attempt)


def _request(peak_mb: float, seconds: float, attempt: int) -> Request:
    mem_mb = max(MIN_MB, math.ceil(MEMORY_MARGIN * peak_mb / 100) * 100)
    minutes = max(MIN_MINUTES, math.ceil(TIME_MARGIN * seconds / 60))
    return Request(mem_mb * attempt, minutes * attempt)


# --- training --------------------------------------------------------------------------------------

TRAIN_BASE_MB = 3000  # torch, CUDA's host libraries, models, optimisers, one batch
LOADER_WORKER_MB = 600  # each DataLoader process: its own interpreter, torch and HDF5 handles
COMPACT_BYTES_PER_PIXEL = (
    22  # a training frame as stored: RGB, skeleton, IUV, mask (uint8), 3D label, flow (fp16)
)
# Seconds per step on one H100-class GPU, paper-sized networks at 512 px, batch 2 pairs: an
# estimate from 7.9 ms per rendered frame (eager bf16, batch 8) times forward + backward of the
# generator, the discriminator and VGG, until bench/gpu.py's table replaces it. Smaller
# networks and sides scale with their convolutions' work, down to a floor of kernel launches.
GPU_SECONDS_PER_PAPER_STEP = 0.4
GPU_MIN_SECONDS_PER_STEP = 0.05
# With `device: cpu` a step's activations are in host memory and its time is the CPU's: measured
# with bench/scale.py's train stage (standard preset, batch 2 pairs, one thread of the shared 2-core
# machine): 2.28 GB at 128 px, 3.74 GB at 256 px; about 4 s a step at 128 px.
CPU_ACTIVATION_BYTES = 310  # per pixel, generator channel (ngf) and image of the batch
CPU_SECONDS_PER_PAPER_STEP = 700.0
STEP_OVERHEAD = 1.2  # samples, checkpoints, the loss log
PRETRAIN_MB_PER_FRAME = 0.01  # keypoints and flags of a pretraining frame (its images stay on disk)
# UV-generator pretraining on the CPU (batch 4 frames, one thread of the loaded 2-core machine):
# 1.45 s a step and 1.19 GB at 128 px (standard widths), 29.6 s and 4.96 GB at 256 px (paper widths).
CPU_SECONDS_PER_PAPER_UV_STEP = 120.0  # 512 px, paper widths, 4 frames; a quarter of that at 256 px
CPU_UV_STEP_OVERHEAD = 1.0  # reading the batch's frames from the caches


def epochs_for(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """The epochs a run makes: ``epochs``, or more where a short clip needs them for ``min_steps``."""
    return max(epochs, -(-min_steps // max(1, steps_per_epoch)))


def training_steps(
    frames: int, epochs: int, batch_pairs: int, min_steps: int = 0, validation_share: float = 0.1
) -> int:
    """Steps of a run: pairs of adjacent training frames (validation held out) per batch, per epoch,
    for ``epochs`` or as many more as ``min_steps`` needs (:func:`epochs_for`)."""
    pairs = max(1, round(frames * (1 - validation_share)) - 1)
    per_epoch = max(1, pairs // batch_pairs)
    return epochs_for(epochs, min_steps, per_epoch) * per_epoch


def train_request(
    frames: int, side: int, train: Mapping[str, Any], widths: Mapping[str, int], attempt: int = 1,
    on_cpu: bool = False,
) -> Request:  # fmt: skip
    """``train``: host memory for the data it keeps and its loader, time for its steps on one GPU
    (``on_cpu``: the activations in host memory too, and the CPU's step time).

    ``train``: the resolved training settings (``resolution``, ``epochs``, ``min_steps``, ``batch_pairs``,
    ``loader_workers``, ``in_memory_mb``); ``widths``: ``ngf`` and ``n_blocks``.
    """
    resolution = train["resolution"] or side
    compact_mb = compact_frames_mb(frames, resolution)
    in_memory = compact_mb if compact_mb <= train["in_memory_mb"] else 0.0
    peak_mb = TRAIN_BASE_MB + in_memory + LOADER_WORKER_MB * train["loader_workers"]
    steps = training_steps(frames, train["epochs"], train["batch_pairs"], train.get("min_steps", 0))
    return _step_request(peak_mb, steps, resolution, widths, train["batch_pairs"], attempt, on_cpu)


def prior_request(
    frames: int, side: int, steps: int, train: Mapping[str, Any], widths: Mapping[str, int], attempt: int = 1,
    on_cpu: bool = False,
) -> Request:  # fmt: skip
    """``pretrain_renderer``: every person's frames in memory up to ``in_memory_mb`` in all (the prior
    shares that budget between them; no loader processes), time for ``steps`` training steps."""
    resolution = train["resolution"] or side
    peak_mb = TRAIN_BASE_MB + min(compact_frames_mb(frames, resolution), train["in_memory_mb"])
    return _step_request(peak_mb, steps, resolution, widths, train["batch_pairs"], attempt, on_cpu)


def _step_request(peak_mb: float, steps: int, resolution: int, widths: Mapping[str, int], batch_pairs: int,
                  attempt: int, on_cpu: bool) -> Request:  # fmt: skip
    """A training job's request: ``peak_mb`` of data (+ the CPU's activations), ``steps`` steps."""
    if on_cpu:  # 4 images a step: the pair's two frames, generated and real
        images = 2 * batch_pairs
        peak_mb += CPU_ACTIVATION_BYTES * resolution**2 * widths["ngf"] * images / 2**20
    seconds = steps * _step_seconds(resolution, widths, batch_pairs, on_cpu)
    return _request(peak_mb, 120 + STEP_OVERHEAD * seconds, attempt)


def compact_frames_mb(frames: int, side: int) -> float:
    """Training frames held in memory as stored (``COMPACT_BYTES_PER_PIXEL``), in MB."""
    return frames * side**2 * COMPACT_BYTES_PER_PIXEL / 2**20


def _work(resolution: int, widths: Mapping[str, int]) -> float:
    """A generator's convolutions' work relative to the paper's (512 px, ngf 64, 9 blocks)."""
    return (resolution / 512) ** 2 * (widths["ngf"] / 64) ** 2 * (widths["n_blocks"] + 8) / (9 + 8)


def _step_seconds(
    resolution: int, widths: Mapping[str, int], batch_pairs: int, on_cpu: bool = False
) -> float:
    """One training step on one GPU (or the CPU): the paper-sized step scaled by its convolutions' work."""
    work = _work(resolution, widths)
    if on_cpu:
        return CPU_SECONDS_PER_PAPER_STEP * work * batch_pairs / 2
    return max(GPU_MIN_SECONDS_PER_STEP, GPU_SECONDS_PER_PAPER_STEP * work * batch_pairs / 2)


def pretrain_request(
    frames: int, side: int, epochs: int, widths: Mapping[str, int], batch: int = 4, attempt: int = 1,
    on_cpu: bool = False,
) -> Request:  # fmt: skip
    """``pretrain_uv``: a UV-generator step per ``batch`` pretraining frames and epoch at ``side`` px.

    The frames are read from the caches a batch at a time (``SubjectData`` without an in-memory
    budget), so only their keypoints and flags stay in memory; ``on_cpu``: the step's activations
    are in host memory too, and its time is the CPU's.
    """
    peak_mb = TRAIN_BASE_MB + PRETRAIN_MB_PER_FRAME * frames
    steps = -(-frames // batch) * epochs
    if on_cpu:
        peak_mb += CPU_ACTIVATION_BYTES * side**2 * widths["ngf"] * batch / 2**20
        step = CPU_UV_STEP_OVERHEAD + CPU_SECONDS_PER_PAPER_UV_STEP * _work(side, widths) * batch / 4
    else:  # about a floor step per frame
        step = batch * GPU_MIN_SECONDS_PER_STEP * side**2 / REFERENCE_SIDE**2
    return _request(peak_mb, 120 + STEP_OVERHEAD * steps * step, attempt)


# --- a subject's size ------------------------------------------------------------------------------


def kept_frames(total: int, stride: int, max_frames: int | None) -> int:
    """Frames the frames stage keeps of ``total``: every ``stride``-th, at most ``max_frames``."""
    kept = math.ceil(total / stride)
    return kept if max_frames is None else min(kept, max_frames)


def cached_frames(frames_h5: Path) -> int | None:
    """The frame count of a written frames cache (its dataset's length), or None where there is none."""
    if not frames_h5.is_file():
        return None
    import h5py

    try:
        with h5py.File(frames_h5, "r", locking=False) as handle:
            return int(handle["frames"].shape[0])
    except (OSError, KeyError):
        return None  # being written, or broken: the frames rule will say so


@lru_cache(maxsize=256)
def video_size(path: str, modified: float) -> tuple[int, int]:
    """(frames, pixels per frame) of a video according to its container, without decoding.

    Frames: the container's count, or duration x rate. ``modified`` (the file's mtime) is part of
    the cache key, so an edited video is probed again. A file that cannot be read gives (0, 0);
    the frames rule reports it properly.
    """
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            pixels = int(stream.codec_context.width * stream.codec_context.height)
            if stream.frames:
                return int(stream.frames), pixels
            rate = float(stream.average_rate or stream.guessed_rate or 30)
            if stream.duration is not None and stream.time_base is not None:
                return math.ceil(float(stream.duration * stream.time_base) * rate), pixels
            return math.ceil((container.duration or 0) / 1e6 * rate), pixels
    except (OSError, IndexError, av.error.FFmpegError):
        return 0, 0
