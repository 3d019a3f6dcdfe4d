"""The Snakemake workflow end to end: lint, config errors before any job, a full small run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

from posetransfer import cache, video

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# A small synthetic subject: few frames, but people still big enough for MediaPipe.
SMALL = {
    "synthetic": {"width": 320, "height": 384, "num_frames": 12, "fps": 12},
    "frames": {"resolution": 128},
    # A second synthetic person drives the subject, rendered over the driving video's scene.
    "transfer": {
        "driving": {"walk": "synthetic:3"},
        "pairs": ["walk -> *"],
        "paste_back": True,
        "background": "driving",
    },
}


def snakemake(workdir: Path, *args: str, config: dict | None = None, check: bool = True):
    """Run the workflow in ``workdir`` with its own config file; returns the completed process."""
    configfile = workdir / "config.yaml"
    if config is not None:
        configfile.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile)]
    result = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=1200)
    if check and result.returncode:
        raise AssertionError(f"snakemake {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", config={"subjects": str(REPO / "subjects.tsv")})
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"frames": {"resolution": 100}}, "config key frames.resolution: 100 is not a multiple of 16"),
        ({"frames": {"backend": "x"}}, "unknown config key frames.backend"),
        ({"optical_flow": {}}, "unknown config key optical_flow"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, config, expected):
    config = {"subjects": str(REPO / "subjects.tsv"), **config}
    result = snakemake(tmp_path, "--cores", "1", config=config, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("posetransfer:")]
    assert errors == [f"posetransfer: config error: {tmp_path / 'config.yaml'}: {expected}"] or (
        len(errors) == 1 and expected in errors[0]
    ), result.stderr
    assert not (tmp_path / "results").exists()


def test_missing_video_in_sheet_is_one_line(tmp_path):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text("name\tvideo\tnotes\nalice\tnowhere/alice.mp4\t\n")
    result = snakemake(tmp_path, "--cores", "1", config={"subjects": str(sheet)}, check=False)
    assert result.returncode != 0
    assert f"subject alice: video file not found: {tmp_path / 'nowhere/alice.mp4'}" in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, anny_cache_dir):
    """The main job on a small synthetic subject, run twice in two folders."""
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path_factory.mktemp(name)
        (workdir / "subjects.tsv").write_text("name\tvideo\tnotes\nsynth\tsynthetic:0\ttest subject\n")
        config = {**SMALL, "subjects": "subjects.tsv", "anny_cache_dir": str(anny_cache_dir)}
        snakemake(workdir, "--cores", "2", config=config)
        runs.append(workdir)
    return runs


def test_workflow_produces_valid_caches_previews_logs_and_benchmarks(workflow_run):
    workdir = workflow_run[0]
    stages = ("frames", "pose2d", "masks", "flow", "background", "body3d", "labels3d", "texture")
    for path in (*(f"{stage}.h5" for stage in stages), "synthetic/truth.h5", "synthetic/labels3d_truth.h5"):
        assert "valid: yes" in cache.describe(workdir / "results/synth" / path, verify=True)
    with cache.open_cache(workdir / "results/synth/frames.h5") as frames:
        assert frames.dataset("frames").shape == (12, 128, 128, 3)
        assert frames.read("person_found").all()
    previews = ("frames.png", "synthetic.mp4", "pose2d.mp4", "masks.png", "flow.png", "background.png")
    for preview in (*previews, "body3d.mp4", "labels3d.png", "texture.png"):
        assert (workdir / "results/synth/previews" / preview).stat().st_size > 5_000
    evaluation = json.loads((workdir / "results/synth/evaluation/metrics.json").read_text())
    assert 0 < evaluation["ssim"] <= 1 and evaluation["frames"] >= 1
    assert (workdir / "results/synth/model/loss_curve.png").stat().st_size > 5_000
    transferred = json.loads((workdir / "results/transfer/walk_to_synth/metrics.json").read_text())
    assert transferred["frames"] == 12 and transferred["fid"] is None and transferred["fid_unavailable"]
    assert (workdir / "results/synth/report.html").stat().st_size > 50_000
    accuracy = json.loads((workdir / "results/synth/synthetic/fit_accuracy.json").read_text())
    assert (
        accuracy["part_accuracy"] > 0.7
    )  # 12 frames at 128 px: a rough check; tests/test_labels3d.py is exact
    for rule in ("frames", "synthesize", "pose2d", "masks", "flow", "background", "body3d", "labels3d"):
        log = (workdir / f"logs/synth/{rule}.log").read_text()
        assert "100%" in log and "Traceback" not in log
        assert (workdir / f"benchmarks/synth/{rule}.tsv").read_text().startswith("s\th:m:s")
    # The shared body-model cache was built once (by this run or an earlier one) and marked complete.
    assert (
        "anny"
        in (
            Path(yaml.safe_load((workdir / "config.yaml").read_text())["anny_cache_dir"]) / "built.txt"
        ).read_text()
    )


def test_workflow_outputs_are_byte_identical_across_runs(workflow_run):
    first, second = workflow_run
    outputs = ("synthetic/video.mp4", "synthetic/truth.h5", "frames.h5", "pose2d.h5", "masks.h5", "flow.h5")
    for path in (*outputs, "background.h5", "body3d.h5", "labels3d.h5", "texture.h5"):
        assert (first / "results/synth" / path).read_bytes() == (
            second / "results/synth" / path
        ).read_bytes(), path


def test_transfer_videos_follow_the_driving_video(workflow_run):
    workdir = workflow_run[0]
    driving = video.probe(workdir / "results/walk/synthetic/video.mp4")
    result = video.probe(workdir / "results/transfer/walk_to_synth/video.mp4")
    assert (result.container_frames, result.fps) == (driving.container_frames, driving.fps) == (12, 12)
    assert (result.width, result.height) == (3 * 128, 128)  # driving | skeleton | ours
    frames = list(video.read_frames(workdir / "results/transfer/walk_to_synth/video.mp4"))
    assert len(frames) == 12 and all(frame.std() > 5 for frame in frames)
    pasted = video.probe(workdir / "results/transfer/walk_to_synth/pasted.mp4")
    assert (pasted.width, pasted.height, pasted.container_frames) == (320, 384, 12)  # target frame size
    with cache.open_cache(workdir / "results/transfer/walk_to_synth/labels3d.h5", "labels3d") as labels:
        assert labels.read("mask").any(axis=(1, 2)).all()  # the target's body in every driving pose


def test_transfer_command_preprocesses_a_new_driving_video_like_the_workflow(workflow_run, tmp_path):
    workdir = workflow_run[0]
    out = tmp_path / "walk.mp4"
    command = [
        sys.executable,
        "-m",
        "posetransfer",
        "transfer",
        "--model",
        str(workdir / "results/synth/model"),
    ]
    command += ["--driving", str(workdir / "results/walk/synthetic/video.mp4"), "--out", str(out)]
    subprocess.run([*command, "--config", str(workdir / "config.yaml")], check=True, cwd=workdir)
    assert video.probe(out).container_frames == 12
    assert {"frames.h5", "pose2d.h5", "body3d.h5", "background.h5"} <= {
        path.name for path in (tmp_path / "walk.driving").iterdir()
    }
    with (
        cache.open_cache(tmp_path / "walk.labels3d.h5") as ours,
        cache.open_cache(workdir / "results/transfer/walk_to_synth/labels3d.h5") as workflows,
    ):
        assert np.array_equal(ours.read("laplacian"), workflows.read("laplacian"))
    summary = json.loads((tmp_path / "walk.json").read_text())
    assert summary["frames"] == 12 and summary["background"] == "driving"


def test_subject_report_links_only_existing_files(workflow_run):
    workdir = workflow_run[0]
    page = workdir / "results/synth/report.html"
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.read_text())
    files = [source for source in sources if not source.startswith("data:")]
    assert files == ["../transfer/walk_to_synth/video.mp4", "../transfer/walk_to_synth/pasted.mp4"]
    assert all((page.parent / source).is_file() for source in files)
    assert len(sources) - len(files) >= 4  # loss curves, samples, validation and challenging frames


def test_report_collects_the_previews(workflow_run):
    workdir = workflow_run[0]
    result = snakemake(workdir, "--report", str(workdir / "report.html"))
    assert (workdir / "report.html").stat().st_size > 50_000
    assert "(ERROR/" not in result.stdout + result.stderr  # every caption is valid reStructuredText


def test_truncated_cache_is_reported_by_inspect(workflow_run, tmp_path):
    data = (workflow_run[0] / "results/synth/frames.h5").read_bytes()
    truncated = tmp_path / "frames.h5"
    truncated.write_bytes(data[: len(data) // 3])
    result = subprocess.run(
        [sys.executable, "-m", "posetransfer", "inspect", str(truncated)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith(f"posetransfer: error: {truncated}: cannot open as HDF5")
