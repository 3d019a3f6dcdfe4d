"""Bad input, round two (issue 14): one test per row, each asserting what the user sees.

Every case: one line naming the file or config key and the problem, the exit status, and nothing
half-written or empty left behind; warnings land in the job log and in the subject's report.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import yaml
from conftest import REPO

from posetransfer import cache, cli
from posetransfer.config import validate_config


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


def _frames_cache(path: Path) -> Path:
    with cache.write_cache(path, "frames", {"resolution": 32}, source_sha256="ab" * 32) as writer:
        frames = writer.frame_dataset("frames", 4, (32, 32, 3), np.uint8)
        for index in range(4):
            frames[index] = np.random.default_rng(index).integers(0, 255, (32, 32, 3))
        writer.array("source_index", np.arange(4))
        writer.array("timestamps", np.arange(4) / 24.0)
        writer.array("person_box", np.zeros((4, 4), np.float32))
        writer.array("person_found", np.ones(4, bool))
        writer.attrs.update(
            fps=24.0,
            source_fps=24.0,
            crop_box=[0, 0, 32],
            resolution=32,
            source_size=[32, 32],
            source_frames=4,
        )
    return path


def test_row13_a_flipped_byte_names_the_file_and_the_remedy(tmp_path, capsys):
    path = _frames_cache(tmp_path / "results" / "alice" / "frames.h5")
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
