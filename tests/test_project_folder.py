"""The workflow run from a user's own folder; config files overlaid as Snakemake does.

The source folder is copied into a temporary folder first, so that "nothing is written inside
the source folder" can be checked against a folder nobody else writes to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, encode, moving_squares

from posetransfer import cli

SOURCE_PARTS = ("Snakefile", "config.yaml", "workflow", "envs")  # what the Snakefile reads


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts  # Python's own bytecode cache
    }


@pytest.fixture
def source(tmp_path) -> Path:
    copy = tmp_path / "posetransfer"
    for part in SOURCE_PARTS:
        origin = REPO / part
        if origin.is_dir():
            shutil.copytree(origin, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.mkdir(exist_ok=True)
            shutil.copy2(origin, copy / part)
    return copy


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's folder: the sheet in sheets/, a video in videos/, their own config.yaml."""
    folder = tmp_path / "project"
    (folder / "sheets").mkdir(parents=True)
    (folder / "videos").mkdir()
    encode(folder / "videos" / "squares.mp4", moving_squares(), fps=12)
    (folder / "sheets" / "people.tsv").write_text(
        "name\tvideo\tnotes\nsynth\tsynthetic:0\ttest\nsquares\t../videos/squares.mp4\tby path\n"
    )
    return folder


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in ``cwd``, as a user types it there (no -d)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )


def test_run_from_own_folder_writes_only_there(source, project, anny_cache_dir):
    config = {
        "subjects": "sheets/people.tsv",
        "anny_cache_dir": str(anny_cache_dir),  # the shared test build: ~790 MB, built once per machine
        "synthetic": {"width": 320, "height": 384, "num_frames": 8, "fps": 12},
        "frames": {"resolution": 128},
        "transfer": {"driving": {}, "pairs": []},
    }
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(source)
    snakefile = str(source / "Snakefile")
    # Sheet paths resolve against the sheet: squares' frames command reads the video at its real path.
    planned = snakemake(
        project, "-s", snakefile, "--configfile", "config.yaml", "-n", "-p", "results/squares/frames.h5"
    )
    assert planned.returncode == 0, planned.stderr
    assert "posetransfer frames sheets/../videos/squares.mp4 " in planned.stdout + planned.stderr
    # A real run to an early target: the synthetic video and its frames cache.
    ran = snakemake(
        project, "-s", snakefile, "--configfile", "config.yaml", "--cores", "2", "results/synth/frames.h5"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (project / "results/synth/frames.h5").stat().st_size > 10_000
    assert (project / "results/synth/synthetic/truth.h5").is_file()
    assert "100%" in (project / "logs/synth/frames.log").read_text()
    assert (project / "benchmarks/synth/synthesize.tsv").read_text().startswith("s\th:m:s")
    assert (project / ".snakemake").is_dir()
    assert snapshot(source) == before  # nothing written inside the source folder
    assert sorted(path.name for path in source.iterdir()) == sorted(SOURCE_PARTS)


def test_module_directive_and_default_config_from_the_source(source, project):
    (project / "mine.yaml").write_text("subjects: sheets/people.tsv\n")
    (project / "Snakefile").write_text(
        f'configfile: "mine.yaml"\n\n\nmodule posetransfer:\n    snakefile:\n        "{source}/Snakefile"\n'
        "    config:\n        config\n\n\nuse rule * from posetransfer as posetransfer_*\n"
    )
    planned = snakemake(project, "-n", "results/squares/frames.h5")
    assert planned.returncode == 0, planned.stderr
    assert "posetransfer_frames" in planned.stdout
    # No config.yaml in the folder: the source's config.yaml gives the defaults, mine.yaml the rest.
    (project / "Snakefile").unlink()
    planned = snakemake(
        project, "-s", str(source / "Snakefile"), "--configfile", "mine.yaml", "-n", "--cores", "1"
    )
    assert planned.returncode == 0, planned.stderr
    assert "results/squares/frames.h5" in planned.stdout


def test_a_target_after_configfile_is_named_as_the_config_file_it_became(source, project):
    """Issue 14, row 14: ``snakemake --configfile mine.yaml results/x/metrics.json``."""
    (project / "mine.yaml").write_text("subjects: sheets/people.tsv\n")
    metrics = project / "results/synth/evaluation/metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"fid": null, "psnr": 22.5, "ssim": 0.83}\n')
    target = "results/synth/evaluation/metrics.json"
    result = snakemake(project, "-s", str(source / "Snakefile"), "--configfile", "mine.yaml", target, "-n")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("posetransfer:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"posetransfer: config error: {metrics}: unknown config key fid, psnr, ssim")
    assert "a target written after --configfile is read as one more config file" in errors[0]
    # A real config file with a wrong key is named too, without the hint.
    (project / "extra.yaml").write_text("frames: {resolution: 100}\n")
    result = snakemake(
        project, "-s", str(source / "Snakefile"), "--configfile", "mine.yaml", "extra.yaml", "-n"
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("posetransfer:")]
    expected = (
        f"posetransfer: config error: {project / 'extra.yaml'}: config key frames.resolution: 100 is not a"
    )
    assert (
        len(errors) == 1
        and errors[0].startswith(expected)
        and "read as one more config file" not in errors[0]
    )


def test_check_config_overlays_files_like_snakemake(tmp_path, capsys):
    (tmp_path / "people.tsv").write_text("name\tvideo\tnotes\nsynth\tsynthetic:0\t\n")
    base, mine = tmp_path / "base.yaml", tmp_path / "mine.yaml"
    base.write_text(
        "subjects: people.tsv\nframes: {resolution: 128, stride: 2}\n"
        "evaluation: {variants: [no_d2g, no_ema]}\n"
    )
    mine.write_text("frames: {resolution: 64}\nevaluation: {variants: [pose_to_image]}\n")
    capsys.readouterr()
    assert cli.main(["check-config", "--configfile", str(base), str(mine), "--show"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out.split(f"{base}, {mine}: valid")[0])
    assert shown["frames"]["resolution"] == 64 and shown["frames"]["stride"] == 2  # later wins, merged by key
    assert shown["evaluation"]["variants"] == ["pose_to_image"]  # lists are replaced, as Snakemake does
    assert shown["subjects"] == "people.tsv"


@pytest.mark.parametrize("culprit", ["base", "mine"])
def test_check_config_names_the_file_with_the_unknown_key(tmp_path, capsys, culprit):
    (tmp_path / "people.tsv").write_text("name\tvideo\tnotes\nsynth\tsynthetic:0\t\n")
    files = {"base": tmp_path / "base.yaml", "mine": tmp_path / "mine.yaml"}
    files["base"].write_text("subjects: people.tsv\nframes: {resolution: 128}\n")
    files["mine"].write_text("frames: {stride: 2}\n")
    with open(files[culprit], "a") as handle:
        handle.write("masks: {treshold: 0.4}\n")
    capsys.readouterr()
    assert cli.main(["check-config", "--configfile", str(files["base"]), str(files["mine"])]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"posetransfer: error: {files[culprit]}: unknown config key masks.treshold")
