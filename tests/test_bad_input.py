"""Bad input, round two (issue 14): one test per row, each asserting what the user sees.

Every case: one line naming the file or config key and the problem, the exit status, and nothing
half-written or empty left behind; warnings land in the job log and in the subject's report.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, encode, moving_squares, tiny_frames_cache

from posetransfer import cache, cli, video
from posetransfer.config import validate_config
from posetransfer.input_warnings import picture_in_crop


def _posetransfer(capsys, *argv: str | Path) -> tuple[int, list[str]]:
    """Run the command line in-process: exit status and the lines it printed on stderr."""
    capsys.readouterr()
    status = cli.main([str(arg) for arg in argv])
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("posetransfer: error:")]


# --- row 3: integers written as floats -----------------------------------------------------------


def _integer_keys(schema: dict, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    found = []
    for key, sub in schema.get("properties", {}).items():
        if "integer" in sub.get("type", []) and "default" in sub:
            found.append(((*prefix, key), sub))
        found += _integer_keys(sub, (*prefix, key))
    return found


def test_row3_every_integer_key_written_as_a_float_is_read_as_an_integer():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    keys = _integer_keys(schema)
    assert len(keys) > 30  # every integer key of every section
    config: dict = {}
    for path, sub in keys:
        value = sub["default"] if sub["default"] is not None else sub.get("minimum", 1)
        node = config
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = float(value)
    filled = validate_config(config)
    for path, _ in keys:
        value = filled
        for part in path:
            value = value[part]
        assert type(value) is int, path


def test_row3_resolution_as_float_reaches_the_stage_as_an_integer(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    (tmp_path / "subjects.tsv").write_text("name\tvideo\tnotes\nsynthetic\tsynthetic:0\t\n")
    config.write_text("frames: {resolution: 128.0}\n")
    capsys.readouterr()
    assert cli.main(["check-config", "--config", str(config), "--show"]) == 0
    assert "  resolution: 128\n" in capsys.readouterr().out
    config.write_text("frames: {resolution: 128.5}\n")
    status, lines = _posetransfer(capsys, "check-config", "--config", config)
    assert status == 1
    assert lines == [
        f"posetransfer: error: {config}: config key frames.resolution: 128.5 is not of type 'integer'"
    ]


# --- rows 8 and 9: the subject sheet --------------------------------------------------------------


def test_row8_a_byte_order_mark_in_the_sheet_is_accepted(tmp_path, capsys):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_bytes("\ufeffname\tvideo\tnotes\nsynthetic\tsynthetic:0\tsaved by Excel\n".encode())
    (tmp_path / "config.yaml").write_text(f"subjects: {sheet}\n")
    status, lines = _posetransfer(capsys, "check-config", "--config", tmp_path / "config.yaml")
    assert (status, lines) == (0, [])


def test_row9_extra_fields_on_a_row_are_one_line_naming_sheet_and_line(tmp_path, capsys):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text("name\tvideo\tnotes\n# a comment line\nsynthetic\tsynthetic:0\tstudio\t30 fps\n")
    (tmp_path / "config.yaml").write_text(f"subjects: {sheet}\n")
    status, lines = _posetransfer(capsys, "check-config", "--config", tmp_path / "config.yaml")
    assert status == 1
    assert lines == [
        f"posetransfer: error: {sheet}, line 3: 4 tab-separated fields, the header has 3"
        " (name, video, notes); extra: '30 fps' (a tab inside the notes?)"
    ]


# --- row 13: a flipped byte inside a cache --------------------------------------------------------


def test_row13_a_flipped_byte_names_the_file_and_the_remedy(tmp_path, capsys):
    path = tiny_frames_cache(tmp_path / "results" / "alice" / "frames.h5")
    with h5py.File(path, "r") as handle:
        offset = handle["frames"].id.get_chunk_info(2).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    status, lines = _posetransfer(capsys, "inspect", path, "--verify")
    assert status == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"posetransfer: error: {path}: dataset 'frames' is corrupt (")
    assert lines[0].endswith(
        f"delete {path} and run the workflow again, or run `snakemake --forcerun frames`"
    )


# --- rows 4, 5, 7, 10: the frames stage -----------------------------------------------------------


def _frames_cli(capsys, video: Path, out_dir: Path, *extra: str) -> tuple[int, list[str]]:
    out = out_dir / "frames.h5"
    return _posetransfer(capsys, "frames", video, out, "--preview", out_dir / "frames.png", *extra)


def _nothing_written(folder: Path) -> bool:
    return not [path for path in folder.rglob("*") if path.is_file()]


def _encode_at_times(path: Path, images: list[np.ndarray], times_ms: list[int]) -> Path:
    """An H.264 MP4 whose frames are shown at the given times: a variable frame rate."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for image, time_ms in zip(images, times_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = time_ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_row4_a_variable_frame_rate_is_resampled_to_a_constant_one_with_a_warning(
    synthetic_clip, tmp_path, capsys
):
    images = list(video.read_frames(synthetic_clip[0]))  # 16 frames
    times = [50 * i for i in range(8)] + [350 + 150 * i for i in range(1, 9)]  # 20 fps, then 6.7 fps
    clip = _encode_at_times(tmp_path / "vfr.mp4", images, times)
    status, lines = _frames_cli(capsys, clip, tmp_path / "out", "--params", '{"resolution": 64}')
    assert status == 0
    warning = [line for line in lines if "WARNING" in line]
    expected = "variable frame rate (frame intervals 50-150 ms): resampled to a constant 9.677 fps"
    assert len(warning) == 1 and warning[0].endswith(expected + ", 3 frame(s) repeated, 3 dropped"), lines
    with cache.open_cache(tmp_path / "out" / "frames.h5", "frames") as frames:
        source, stamps = frames.read("source_index"), frames.read("timestamps")
        assert frames.attrs["fps"] == pytest.approx(15 / 1.55)
        recorded = json.loads(frames.attrs["warnings"])
    assert recorded == [warning[0].split(": ", 1)[1]]
    np.testing.assert_allclose(stamps, np.arange(len(stamps)) / (15 / 1.55))
    # Each tick of the constant rate shows the frame whose true time is nearest.
    distance = np.abs(np.asarray(times)[None, :] / 1000 - stamps[:, None])
    np.testing.assert_allclose(distance[np.arange(len(source)), source], distance.min(axis=1))
    assert set(np.diff(source)) == {0, 1, 2}


@pytest.mark.parametrize(("fps", "shown"), [(1000, "1000 fps"), (0.01, "0.01 fps")])
def test_row5_a_frame_rate_outside_5_to_60_fps_is_one_line(make_video, tmp_path, capsys, fps, shown):
    clip = make_video(f"fast{fps}.mp4", moving_squares(4, 96, 96), fps=fps)
    status, lines = _frames_cli(capsys, clip, tmp_path / "out")
    assert status == 1
    assert _errors(lines) == [
        f"posetransfer: error: {clip}: {shown} is outside the 5-60 fps this workflow is made for; if"
        " the container's rate is wrong, re-encode at the true rate (ffmpeg -r); for a fast camera,"
        " keep every Nth frame with frames.stride"
    ]
    assert _nothing_written(tmp_path / "out")


def test_row7_a_two_frame_video_is_too_short_to_train(make_video, tmp_path, capsys):
    clip = make_video("two.mp4", moving_squares(2, 96, 96))
    status, lines = _frames_cli(capsys, clip, tmp_path / "out", "--min-frames", "3")
    assert status == 1
    assert _errors(lines) == [
        f"posetransfer: error: {clip}: too short: 2 frame(s) kept (stride 1, max_frames None);"
        " training needs at least 3: two adjacent training frames and a validation frame (the last"
        " 10%), and many more to learn the person"
    ]
    assert _nothing_written(tmp_path / "out")


def test_row7_the_workflow_asks_subjects_to_train_for_three_frames(tmp_path):
    config = {"subjects": str(REPO / "subjects.tsv"), "transfer": {"driving": {"dance": "synthetic:1"}}}
    result = _snakemake(tmp_path, config, "--dry-run", "--printshellcmds", "--cores", "1")
    assert result.returncode == 0, result.stderr
    output = (result.stdout + result.stderr).splitlines()
    commands = [line.split("command: ")[-1] for line in output if "command: posetransfer frames " in line]
    minimum = {command.split()[3]: command.split("--min-frames ")[1].split()[0] for command in commands}
    assert minimum == {"results/synthetic/frames.h5": "3", "results/dance/frames.h5": "1"}


def test_row10_a_png_renamed_mp4_is_refused_at_frames(tmp_path, capsys):
    clip = tmp_path / "photo.mp4"
    clip.write_bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    status, lines = _frames_cli(capsys, clip, tmp_path / "out")
    assert (status, lines) == (
        1,
        [f"posetransfer: error: {clip}: a still image (PNG), not a video; give a video file"],
    )
    assert _nothing_written(tmp_path / "out")


# --- row 6: posetransfer transfer with a bad model or a driving video without a person ------------


def _model_folder(tmp_path: Path, model_bytes: bytes | None = None, state: dict | None = None) -> Path:
    """results/alice/model/ beside alice's caches, as the workflow lays them out."""
    subject = tmp_path / "results" / "alice"
    (subject / "model").mkdir(parents=True)
    for name in ("frames.h5", "pose2d.h5", "body3d.h5"):
        (subject / name).write_bytes(b"")  # only their presence is checked before the model
    if model_bytes is not None:
        (subject / "model" / "model.pt").write_bytes(model_bytes)
    else:
        torch.save(state, subject / "model" / "model.pt")
    return subject / "model"


def _transfer_leaves_nothing(tmp_path: Path) -> bool:
    left = [path.name for path in tmp_path.glob("out*")]
    return left == []


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (b"\x93random bytes, not a zip nor a pickle" * 10,
         "not a posetransfer model: torch cannot read it (UnpicklingError)"),
        ({"weights": [1.0, 2.0]}, "not a posetransfer model: a torch file without a trained renderer"
         " (it holds weights); use the model.pt that `posetransfer train` writes"),
        ({"models": {}, "config": {}, "step": 150}, "a checkpoint saved during training (step 150), not a"
         " finished model: training stopped before its end; run it again to finish (it resumes), then"
         " use its model.pt"),
    ],
)  # fmt: skip
def test_row6_a_bad_model_is_refused_before_any_preprocessing(tmp_path, capsys, model, problem):
    folder = _model_folder(tmp_path, model if isinstance(model, bytes) else None, model)
    driving = tmp_path / "dance.mp4"
    driving.write_bytes(b"never read")
    status, lines = _posetransfer(
        capsys, "transfer", "--model", folder, "--driving", driving, "--out", tmp_path / "out.mp4"
    )
    assert (status, lines) == (1, [f"posetransfer: error: {folder / 'model.pt'}: {problem}"])
    assert _transfer_leaves_nothing(tmp_path)


def test_row6_a_driving_video_without_a_person_leaves_no_empty_folder(tmp_path, capsys, make_video):
    from dataclasses import asdict

    from posetransfer.training import TrainConfig

    state = {"models": {}, "config": asdict(TrainConfig()), "step": 1, "meta": {"resolution": 64}}
    folder = _model_folder(tmp_path, state=state)
    anny = tmp_path / "anny"
    anny.mkdir()
    (anny / "built.txt").write_text("built\n")
    (tmp_path / "config.yaml").write_text(f"anny_cache_dir: {anny}\n")
    driving = make_video("empty_room.mp4", moving_squares(6, 128, 128))
    status, lines = _posetransfer(
        capsys, "transfer", "--model", folder, "--driving", driving, "--out", tmp_path / "out.mp4",
        "--config", tmp_path / "config.yaml",
    )  # fmt: skip
    assert status == 1
    assert _errors(lines) == [f"posetransfer: error: {driving}: no person found in any of the 6 frames"]
    assert _transfer_leaves_nothing(tmp_path)


# --- row 2: device cuda (and every GPU-only choice) without CUDA, before any job -----------------


def _snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    command += ["--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=3000)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"device": "cuda"}, "config key device: cuda, but this machine has no CUDA GPU (torch finds none);"
         " use device: auto (the GPU where there is one) or cpu"),
        ({"train": {"compile": True}}, "config key train.compile: true needs a CUDA GPU (torch.compile of"
         " the generators), and this machine has none; set it to false"),
    ],
)  # fmt: skip
def test_row2_gpu_only_choices_without_cuda_stop_before_any_job(tmp_path, config, expected):
    result = _snakemake(tmp_path, {"subjects": str(REPO / "subjects.tsv"), **config}, "--cores", "1")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("posetransfer")]
    assert errors == [f"posetransfer: config error: {expected}"], result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_row2_check_config_and_a_stage_refuse_cuda_without_a_gpu(tmp_path, capsys):
    (tmp_path / "subjects.tsv").write_text("name\tvideo\tnotes\nsynthetic\tsynthetic:0\t\n")
    (tmp_path / "config.yaml").write_text("device: cuda\n")
    status, lines = _posetransfer(capsys, "check-config", "--config", tmp_path / "config.yaml")
    assert status == 1 and len(lines) == 1
    assert lines[0].startswith(
        "posetransfer: error: config key device: cuda, but this machine has no CUDA GPU"
    )
    # In a cluster job the stage says so in one line (the check before any job is skipped there).
    status, lines = _posetransfer(
        capsys, "synthesize", tmp_path / "v.mp4", tmp_path / "t.h5", "--preview", tmp_path / "p.mp4",
        "--seed", "0", "--anny-cache", tmp_path, "--device", "cuda",
    )  # fmt: skip
    assert (status, lines) == (
        1,
        [
            "posetransfer: error: --device cuda (config key device): this machine has no CUDA GPU;"
            " use auto or cpu"
        ],
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.yaml", "subjects.tsv"]


def test_row2_a_cluster_run_leaves_the_gpu_check_to_the_nodes(tmp_path):
    from posetransfer.config import jobs_run_here

    profile = tmp_path / "slurm"
    profile.mkdir()
    (profile / "config.yaml").write_text("executor: slurm\njobs: 5\n")
    assert jobs_run_here(["--cores", "2"], in_job=False)
    assert not jobs_run_here(["--cores", "2"], in_job=True)
    assert not jobs_run_here(["--profile", str(profile)], in_job=False)
    assert not jobs_run_here(["--executor", "slurm"], in_job=False)
    assert jobs_run_here(["--executor=local"], in_job=False)


# --- rows 11 and 12: warnings in the job log and in the subject's report -------------------------


def _warnings_logged(lines: list[str]) -> list[str]:
    return [line.split(": ", 1)[1] for line in lines if " WARNING " in line]


def _report_warnings(subject_dir: Path, tmp_path: Path) -> list[str]:
    from posetransfer import report

    report.write_subject_report(subject_dir, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    if '<h2 id="warnings">Warnings</h2>' not in page:
        return []
    items = page.split('<ul class="warnings">', 1)[1].split("</ul>", 1)[0]
    return [html.unescape(item) for item in re.findall(r"<li>(.*?)</li>", items)]


def test_row11_two_people_side_by_side_warn_in_the_log_and_the_report(synthetic_clip, tmp_path, capsys):
    images = [
        np.concatenate([image, image[:, ::-1]], axis=1) for image in video.read_frames(synthetic_clip[0])
    ]
    clip = encode(tmp_path / "two_people.mp4", images, fps=12)
    subject = tmp_path / "results" / "pair"
    status, lines = _frames_cli(capsys, clip, subject, "--params", '{"resolution": 64}')
    assert status == 0
    logged = _warnings_logged(lines)
    assert len(logged) == 1
    assert re.fullmatch(
        r"a second person is visible on \d+ of the \d+ frames checked"
        r" \(source frame \d+: x \d+-\d+, y \d+-\d+\); the crop follows one person only:"
        r" cut the video to one person",
        logged[0],
    ), logged
    assert cache.read_warnings(subject / "frames.h5") == logged
    assert _report_warnings(subject, tmp_path) == logged


def test_row12_legs_out_of_frame_warn_in_the_log_and_the_report(
    synthetic_clip, anny_cache_dir, tmp_path, capsys
):
    images = [image[:200] for image in video.read_frames(synthetic_clip[0])]  # 384 rows: hips and up
    clip = encode(tmp_path / "upper_body.mp4", images, fps=12)
    subject = tmp_path / "results" / "upper"
    status, _ = _frames_cli(capsys, clip, subject, "--params", '{"resolution": 128}')
    assert status == 0
    status, lines = _posetransfer(
        capsys, "pose2d", subject / "frames.h5", subject / "pose2d.h5", "--preview", subject / "pose2d.mp4"
    )
    assert status == 0
    logged = _warnings_logged(lines)
    assert len(logged) == 1
    assert re.fullmatch(
        r"pose2d: the legs are out of view \(no ankle inside the picture\) on (\d+) of 16 frames with a"
        r" person; the body fit can only guess them: film the whole body",
        logged[0],
    ), logged
    assert cache.read_warnings(subject / "pose2d.h5") == logged
    assert _report_warnings(subject, tmp_path) == logged
    # The mesh preview draws no legs into the black padding below the picture.
    status, _ = _posetransfer(
        capsys, "body3d", subject / "pose2d.h5", subject / "frames.h5", subject / "body3d.h5",
        "--preview", subject / "body3d.mp4", "--anny-cache", anny_cache_dir, "--device", "cpu",
        "--params", '{"root_iterations": 5, "iterations": 5}',
    )  # fmt: skip
    assert status == 0
    with cache.open_cache(subject / "frames.h5") as frames:
        bottom = int(np.ceil(picture_in_crop(frames.attrs)[3]))
    assert bottom < 120  # 200 of 384 source rows: the crop's lower part is padding
    tiles = list(video.read_frames(subject / "body3d.mp4"))
    overlays = np.stack([tile[:, 128:] for tile in tiles])  # frame | mesh over the frame
    assert overlays[:, bottom + 4 :].max() < 16  # padding stays black (H.264 noise aside)
    assert overlays[:, : bottom - 4].mean() > 8  # the mesh is drawn where the picture is


def test_clean_input_records_no_warnings(synthetic_frames, synthetic_pose2d, tmp_path):
    """A clean video: no warnings attribute at all, so its caches keep their bytes."""
    for path in (synthetic_frames, synthetic_pose2d):
        with cache.open_cache(path) as opened:
            assert "warnings" not in opened.attrs
    assert _report_warnings(synthetic_frames.parent, tmp_path) == []


# --- row 1: one broken subject never stops the others (a real two-subject DAG) --------------------


@pytest.mark.slow
def test_row1_keep_going_trains_and_evaluates_the_healthy_subject(tmp_path, anny_cache_dir):
    broken = tmp_path / "videos" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(bytes(range(256)) * 8)  # not a video
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text(f"name\tvideo\tnotes\ngood\tsynthetic:0\t\nbroken\t{broken}\t\n")
    config = {
        "subjects": str(sheet),
        "anny_cache_dir": str(anny_cache_dir),
        "synthetic": {"width": 320, "height": 384, "num_frames": 12, "fps": 12},
        "frames": {"resolution": 64},
        "body3d": {"root_iterations": 10, "iterations": 20},
        "texture": {"size": 32},
        # The default pretraining set (pretrain.subjects: synthetic), one short person here, who
        # also trains a renderer prior for every subject's training to start from.
        "pretrain": {
            "synthetic": {"seeds": [100], "num_frames": 8},
            "epochs": 1,
            "renderer": True,
            "renderer_steps": 2,
        },
        "train": {"epochs": 1, "warmup_epochs": 0},
        "transfer": {"driving": {}, "pairs": []},
    }
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    if "uv_input" in schema["properties"]["model"]["properties"]:
        config["model"] = {"uv_input": "pose"}  # a UV generator that needs the pretrained one
    result = _snakemake(tmp_path, config, "--cores", "2", "--keep-going")
    results = tmp_path / "results"
    assert result.returncode == 1
    assert (results / "pretrain" / "uvgen_pretrained.pt").is_file(), result.stderr
    model = torch.load(results / "good" / "model" / "model.pt", weights_only=False)
    assert model["meta"]["prior"] == "results/pretrain/renderer_prior.pt"
    metrics = json.loads((results / "good" / "evaluation" / "metrics.json").read_text())
    assert metrics["ssim"] > 0
    assert (results / "good" / "report.html").is_file()
    summary = [line for line in result.stderr.splitlines() if line.startswith(("posetransfer:", "  subject"))]
    assert summary[0] == "posetransfer: 1 job(s) failed:", result.stderr
    assert summary[1].startswith(
        f"  subject broken, rule frames: posetransfer: error: {broken}: not a readable video ("
    )
    assert len(summary) == 2
    # Nothing of the broken subject's is left but the empty folder Snakemake made for its outputs.
    assert not [path for path in (results / "broken").rglob("*") if path.is_file()]
