"""SLURM requests that follow the input (posetransfer.resources, used by every rule's resources):
they grow with frames and resolution, and each peak and time measured by Snakemake's benchmark
files fits inside the request made for the same job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO

from posetransfer import resources
from posetransfer.resources import (
    COSTS,
    kept_frames,
    pretrain_request,
    prior_request,
    request,
    train_request,
    training_steps,
)

SIDE = 256 * 256
# Measured on the shared 2-core machine under load (benchmarks/{subject}/{rule}.tsv: max_rss MB and
# wall-clock s; the 300-frame rows: each stage's process, peak RSS), 256 px frames: 60 frames of
# juggler_a.mp4, the 96-frame synthetic subject (640 x 480 video) and the driving video "dance", the
# whole real clips (juggler_a 247, dogplay_b 289, squats_c 65 frames), and a loop of juggler_a to
# 300 frames (bench/scale.py's video; frames, pose2d and flow also at 1,000, before they streamed).
MEASURED = [
    # rule, frames, pixels per frame, peak MB, seconds
    ("frames", 60, SIDE, 308, 47),
    ("pose2d", 60, SIDE, 273, 45),
    ("masks", 60, SIDE, 290, 22),
    ("flow", 60, SIDE, 153, 24),
    ("background", 60, SIDE, 148, 8),
    ("body3d", 60, SIDE, 1200, 36),  # since the body fit's 66x speed-up (README); before it: 997 MB, 325 s
    ("labels3d", 60, SIDE, 935, 104),
    ("texture", 60, SIDE, 196, 17),
    ("frames", 96, SIDE, 322, 55),
    ("pose2d", 96, SIDE, 286, 24),
    ("masks", 96, SIDE, 246, 45),
    ("flow", 96, SIDE, 154, 87),
    ("background", 96, SIDE, 196, 13),
    ("synthesize", 96, 640 * 480, 1082, 306),
    ("synthesize", 96, 640 * 480, 1086, 166),
    ("frames", 247, SIDE, 310, 112),
    ("pose2d", 247, SIDE, 308, 145),
    ("frames", 289, SIDE, 311, 68),
    ("pose2d", 289, SIDE, 312, 55),
    ("masks", 289, SIDE, 379, 142),
    ("flow", 289, SIDE, 154, 224),
    ("frames", 65, SIDE, 301, 31),
    ("pose2d", 65, SIDE, 230, 56),
    ("masks", 65, SIDE, 290, 58),
    ("flow", 65, SIDE, 151, 81),
    ("body3d", 96, SIDE, 1204, 144),
    ("body3d", 96, SIDE, 1047, 33),
    ("labels3d", 96, SIDE, 974, 24),
    ("texture", 96, SIDE, 194, 8),
    ("truth_labels", 96, SIDE, 720, 46),
    ("frames", 96, SIDE, 310, 12),
    ("pose2d", 96, SIDE, 289, 11),
    ("body3d", 96, SIDE, 976, 38),
    ("labels3d", 96, SIDE, 974, 29),
    ("truth_labels", 96, SIDE, 954, 45),
    ("evaluate", 60, SIDE, 1026, 24),
    ("subject_report", 60, SIDE, 98, 7),
    ("transfer", 96, SIDE, 1283, 101),  # the driving video's frames
    ("frames", 300, SIDE, 309, 44),
    ("pose2d", 300, SIDE, 321, 66),
    ("masks", 300, SIDE, 333, 100),
    ("flow", 300, SIDE, 152, 127),
    ("background", 300, SIDE, 399, 23),
    ("labels3d", 300, SIDE, 1076, 221),
    ("texture", 300, SIDE, 222, 22),
    ("frames", 1000, SIDE, 311, 191),
    ("pose2d", 1000, SIDE, 449, 270),
    # bench/scale.py, every stage streaming (README, "Long videos"): 256 and 512 px, up to 3,000 frames.
    ("pose2d", 300, SIDE, 291, 120),
    ("masks", 300, SIDE, 345, 121),
    ("flow", 300, SIDE, 154, 253),
    ("background", 300, SIDE, 346, 7),
    ("labels3d", 300, SIDE, 1076, 175),
    ("texture", 300, SIDE, 222, 17),
    ("pose2d", 1000, SIDE, 295, 245),
    ("masks", 1000, SIDE, 387, 98),
    ("flow", 1000, SIDE, 153, 452),
    ("background", 1000, SIDE, 378, 16),
    ("labels3d", 1000, SIDE, 1064, 327),
    ("texture", 1000, SIDE, 238, 24),
    ("frames", 3000, SIDE, 331, 458),
    ("pose2d", 3000, SIDE, 297, 215),
    ("masks", 3000, SIDE, 382, 258),
    ("background", 3000, SIDE, 380, 60),
    ("labels3d", 3000, SIDE, 1063, 347),
    ("texture", 3000, SIDE, 238, 13),
    ("frames", 300, 4 * SIDE, 343, 79),
    ("pose2d", 300, 4 * SIDE, 373, 83),
    ("masks", 300, 4 * SIDE, 411, 54),
    ("flow", 300, 4 * SIDE, 185, 343),
    ("background", 300, 4 * SIDE, 374, 22),
    ("labels3d", 300, 4 * SIDE, 1094, 233),
    ("texture", 300, 4 * SIDE, 550, 37),
    ("frames", 1000, 4 * SIDE, 337, 236),
    ("pose2d", 1000, 4 * SIDE, 375, 153),
    ("masks", 1000, 4 * SIDE, 416, 156),
    ("background", 1000, 4 * SIDE, 397, 77),
    ("labels3d", 1000, 4 * SIDE, 1094, 212),
    ("texture", 1000, 4 * SIDE, 556, 28),
    ("frames", 3000, 4 * SIDE, 351, 404),
    ("pose2d", 3000, 4 * SIDE, 374, 134),
    ("masks", 3000, 4 * SIDE, 418, 136),
    ("flow", 3000, 4 * SIDE, 187, 1021),
    ("background", 3000, 4 * SIDE, 398, 131),
    ("labels3d", 3000, 4 * SIDE, 1075, 483),
    ("texture", 3000, 4 * SIDE, 556, 87),
    ("body3d", 289, SIDE, 1220, 46),  # all of dogplay_b
    ("body3d", 3000, 4 * SIDE, 1290, 112),  # the 3,000-frame loop fitted whole
    ("transfer", 300, 4 * SIDE, 1442, 68),  # the loop driving dogplay_b's standard model
    ("transfer", 1000, 4 * SIDE, 1460, 322),
    ("transfer", 3000, 4 * SIDE, 1480, 643),
]


@pytest.mark.parametrize(
    "rule", ["frames", "pose2d", "masks", "flow", "background", "labels3d", "texture", "transfer"]
)
def test_streamed_stages_ask_for_what_they_use_at_any_length(rule: str):
    """The request of a stage that streams stays near its measured peak: within 2 x its largest peak
    (and SLURM's 1000 MB floor) from 300 to 3,000 frames at 512 px, not the tens of GB of per-frame
    constants."""
    peaks = [peak for name, _, pixels, peak, _ in MEASURED if name == rule and pixels == 4 * SIDE]
    for frames in (300, 1000, 3000):
        assert request(rule, frames, 4 * SIDE).mem_mb <= max(resources.MIN_MB, 2 * max(peaks))


@pytest.mark.parametrize(("rule", "frames", "pixels", "peak_mb", "seconds"), MEASURED)
def test_each_measured_job_fits_its_request(
    rule: str, frames: int, pixels: int, peak_mb: float, seconds: float
):
    asked = request(rule, frames, pixels)
    assert asked.mem_mb > peak_mb
    assert asked.runtime * 60 > seconds


@pytest.mark.parametrize("rule", sorted(COSTS))
def test_requests_grow_with_frames_and_resolution(rule: str):
    small, long, sharp = request(rule, 5000, SIDE), request(rule, 20000, SIDE), request(rule, 5000, 4 * SIDE)
    assert long.runtime >= small.runtime and sharp.runtime >= small.runtime
    assert long.mem_mb >= small.mem_mb and sharp.mem_mb >= small.mem_mb
    if COSTS[rule].s_per_frame or COSTS[rule].s_per_frame_any_size:
        assert long.runtime > small.runtime
    if COSTS[rule].s_per_frame:
        assert sharp.runtime > small.runtime
    if COSTS[rule].mb_per_frame or COSTS[rule].mb_per_size:
        assert sharp.mem_mb >= small.mem_mb
    if COSTS[rule].mb_per_frame or COSTS[rule].mb_per_frame_any_size:
        assert long.mem_mb > small.mem_mb
    assert request(rule, 5000, SIDE, attempt=2).mem_mb > small.mem_mb  # a retry asks for more


def test_training_time_follows_the_steps():
    train = {"resolution": 512, "epochs": 30, "batch_pairs": 2, "loader_workers": 1, "in_memory_mb": 1024}
    paper = {"ngf": 64, "n_blocks": 9}
    assert training_steps(1000, 30, 2) == 30 * ((900 - 1) // 2)
    assert training_steps(1000, 30, 2, min_steps=600) == training_steps(1000, 30, 2)  # enough already
    assert training_steps(65, 6, 2, min_steps=600) == 22 * 28  # a short clip: more epochs, not fewer steps
    short, long = train_request(1000, 512, train, paper), train_request(4000, 512, train, paper)
    assert long.runtime > 3 * short.runtime > 0
    assert train_request(1000, 512, {**train, "epochs": 60}, paper).runtime > short.runtime
    smaller = train_request(1000, 512, {**train, "resolution": 256}, paper)
    assert smaller.runtime < short.runtime
    # In memory while the compact frames fit train.in_memory_mb, streamed beyond: memory is bounded.
    assert train_request(150, 512, train, paper).mem_mb > train_request(100, 512, train, paper).mem_mb
    assert train_request(4000, 512, train, paper).mem_mb == long.mem_mb


# Training on the CPU, standard preset, one thread: bench/scale.py's train stage (frames, side, peak
# MB) and bench/quality.py's runs of the whole clips at 128 px (frames, steps, minutes; README).
MEASURED_CPU_TRAINING_MEMORY = [
    (30, 128, 2152), (60, 128, 2284), (60, 256, 3742), (300, 512, 8736), (1000, 512, 8763), (3000, 512, 8731)
]  # fmt: skip
MEASURED_CPU_TRAINING_TIME = [(65, 609, 42.4), (247, 660, 43.8), (289, 774, 53.5)]
CPU_SETTINGS = {"epochs": 6, "min_steps": 600, "batch_pairs": 2, "loader_workers": 1, "in_memory_mb": 1024}
STANDARD = {"ngf": 24, "n_blocks": 4}


@pytest.mark.parametrize(("frames", "side", "peak_mb"), MEASURED_CPU_TRAINING_MEMORY)
def test_cpu_training_memory_fits_its_request(frames: int, side: int, peak_mb: float):
    train = {**CPU_SETTINGS, "resolution": side}
    asked = train_request(frames, side, train, STANDARD, on_cpu=True)
    assert asked.mem_mb > peak_mb
    assert train_request(frames, side, train, STANDARD).mem_mb < asked.mem_mb  # a GPU holds activations


@pytest.mark.parametrize(("frames", "steps", "minutes"), MEASURED_CPU_TRAINING_TIME)
def test_cpu_training_time_fits_its_request(frames: int, steps: int, minutes: float):
    train = {**CPU_SETTINGS, "resolution": 128}
    assert abs(training_steps(frames, 6, 2, min_steps=600) - steps) < 10  # squats_c: one frame lost
    assert train_request(frames, 256, train, STANDARD, on_cpu=True).runtime > minutes
    assert train_request(frames, 256, train, STANDARD).runtime < minutes  # a GPU is far faster


def test_uv_pretraining_streams_its_frames():
    short, long = pretrain_request(300, 256, 20, STANDARD), pretrain_request(30000, 512, 20, STANDARD)
    assert long.runtime > short.runtime and long.mem_mb < 1.2 * short.mem_mb


@pytest.mark.parametrize(
    "side, widths, peak_mb, seconds_per_step",
    [(128, STANDARD, 1192, 1.45), (256, {"ngf": 64, "n_blocks": 9}, 4960, 29.6)],
)
def test_uv_pretraining_on_the_cpu_fits_what_it_measured(side, widths, peak_mb, seconds_per_step):
    # pretrain.run on squats_c's 60 frames, batch 4, one epoch (16 steps), `device: cpu`
    request = pretrain_request(60, side, 1, widths, on_cpu=True)
    assert peak_mb <= request.mem_mb
    assert 16 * seconds_per_step / 60 <= request.runtime
    assert pretrain_request(60, side, 1, widths).mem_mb < request.mem_mb  # a GPU holds the activations


def test_prior_request_follows_its_steps_and_shares_the_memory_budget():
    train = {"resolution": 128, "batch_pairs": 2, "in_memory_mb": 1024}
    widths = {"ngf": 24, "n_blocks": 4}
    short = prior_request(300, 256, 600, train, widths)
    assert prior_request(300, 256, 6000, train, widths).runtime > short.runtime
    assert prior_request(600, 256, 600, train, widths).mem_mb > short.mem_mb
    assert (
        prior_request(10**6, 256, 600, train, widths).mem_mb
        == prior_request(10**7, 256, 600, train, widths).mem_mb
    )


def test_subject_size_from_cache_or_container(tmp_path: Path, make_video):
    video = make_video("clip.mp4", [np.full((48, 64, 3), i * 20, np.uint8) for i in range(10)], fps=24.0)
    frames, pixels = resources.video_size(str(video), video.stat().st_mtime)
    assert (frames, pixels) == (10, 48 * 64)
    assert resources.video_size(str(tmp_path / "missing.mp4"), 0.0) == (0, 0)
    assert kept_frames(10, 3, None) == 4 and kept_frames(10, 1, 6) == 6
    cache = tmp_path / "frames.h5"
    assert resources.cached_frames(cache) is None
    with h5py.File(cache, "w") as handle:
        handle["frames"] = np.zeros((7, 16, 16, 3), np.uint8)
    assert resources.cached_frames(cache) == 7


def test_every_rule_asks_through_the_resource_functions():
    """Each rule's mem_mb and runtime call common.smk's functions, with a rule these constants know."""
    rules_dir = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    for smk in sorted(rules_dir.glob("*.smk")):
        for block in smk.read_text().split("\nrule ")[1:]:
            name = block.split(":", 1)[0]
            if name == "body_model" or "resources:" not in block:
                continue  # builds Anny once: the same work for every input
            mem = re.search(r"mem_mb=(\w+)(?:\(\"(\w+)\"\))?,", block)
            runtime = re.search(r"runtime=(\w+)(?:\(\"(\w+)\"\))?,", block)
            assert mem and runtime, f"{smk.name}: rule {name} has fixed resources"
            assert mem.group(1) in ("job_mem_mb", "train_mem_mb", "pretrain_mem_mb", "prior_mem_mb"), name
            assert runtime.group(1) in (
                "job_runtime",
                "train_runtime",
                "pretrain_runtime",
                "prior_runtime",
            ), name
            if mem.group(2):
                assert mem.group(2) in COSTS and runtime.group(2) == mem.group(2), name
            if "gpu=" in block:  # none with `device: cpu` (training_gpus)
                assert "gpu=training_gpus()," in block, name


@pytest.mark.parametrize("device, gpus", [("cpu", 0), ("auto", 1)])
def test_training_asks_for_a_gpu_unless_it_runs_on_the_cpu(device, gpus, tmp_path):
    (tmp_path / "subjects.tsv").write_text((REPO / "subjects.tsv").read_text())
    command = [sys.executable, "-m", "snakemake", "results/pretrain/uvgen_pretrained.pt", "-n"]
    command += ["-d", str(tmp_path), "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]
    planned = subprocess.run([*command, "--config", f"device={device}"], capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr[-2000:]
    block = planned.stdout[planned.stdout.index("rule pretrain_uv:") :].split("\n\n")[0]
    assert f"gpu={gpus}," in block
