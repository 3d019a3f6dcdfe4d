from pathlib import Path

import pytest
import yaml

from posetransfer.config import (
    Subject,
    load_config,
    load_driving,
    load_subjects,
    section_hash,
    transfer_pairs,
    validate_config,
)
from posetransfer.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_is_valid_and_matches_schema_defaults():
    shipped = load_config(REPO / "config.yaml")
    assert shipped == validate_config({}), "config.yaml should spell out exactly the schema's defaults"
    assert shipped["frames"]["resolution"] == 256


def test_the_ablation_variants_the_schema_allows_are_the_ones_training_knows():
    from posetransfer.model.renderer import LOSS_ABLATIONS, VARIANTS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    allowed = schema["properties"]["evaluation"]["properties"]["variants"]["items"]["enum"]
    assert set(allowed) == set(VARIANTS) | set(LOSS_ABLATIONS)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"bogus": 1}, "unknown config key bogus"),
        ({"frames": {"resolutoin": 256}}, "unknown config key frames.resolutoin"),
        ({"frames": {"resolution": 100}}, "frames.resolution: 100 is not a multiple of 16"),
        ({"frames": {"resolution": 48}}, "frames.resolution: 48 is below the minimum 64"),
        ({"frames": {"detector": "yolo"}}, "frames.detector: 'yolo' is not one of: mediapipe"),
        ({"device": "tpu"}, "device: 'tpu' is not one of"),
        ({"frames": {"stride": 0}}, "frames.stride: 0 is below the minimum 1"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(config, expected):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"frames": {"resolution": 100}}))
    with pytest.raises(ConfigError, match=r"config.yaml: config key frames.resolution"):
        load_config(path)
    path.write_text("frames: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_defaults_are_filled_without_touching_given_values():
    config = validate_config({"frames": {"resolution": 512}})
    assert config["frames"]["resolution"] == 512
    assert config["frames"]["stride"] == 1
    assert config["synthetic"]["fps"] == 24


def test_section_hash_is_stable_and_order_free():
    assert section_hash({"a": 1, "b": [1, 2]}) == section_hash({"b": [1, 2], "a": 1})
    assert section_hash({"a": 1}) != section_hash({"a": 2})


def _sheet(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "subjects.tsv"
    path.write_text("name\tvideo\tnotes\n" + rows)
    return path


def test_subject_sheet_resolves_paths_relative_to_the_sheet(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    subjects = load_subjects(_sheet(tmp_path, "alice\tclip.mp4\tfirst\nsynth\tsynthetic:3\t\n"))
    assert [s.name for s in subjects] == ["alice", "synth"]
    assert Path(subjects[0].video) == tmp_path / "clip.mp4"
    assert subjects[0].synthetic_seed is None and subjects[1].synthetic_seed == 3


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("bob\tmissing.mp4\t\n", "subject bob: video file not found"),
        ("bad name\tsynthetic:0\t\n", "line 2: column name"),
        ("a\tsynthetic:x\t\n", "expected synthetic:SEED"),
        ("a\tsynthetic:0\t\na\tsynthetic:1\t\n", "subject name(s) used twice: a"),
        ("", "lists no subjects"),
    ],
)
def test_bad_subject_sheet_is_one_line_naming_the_file(tmp_path, rows, expected):
    with pytest.raises(ConfigError) as error:
        load_subjects(_sheet(tmp_path, rows))
    assert expected in str(error.value)
    assert "subjects.tsv" in str(error.value)
    assert "\n" not in str(error.value)


def test_subject_sheet_needs_its_header(tmp_path):
    path = tmp_path / "subjects.tsv"
    path.write_text("subject\tpath\nbob\tx.mp4\n")
    with pytest.raises(ConfigError, match="expected tab-separated columns name, video"):
        load_subjects(path)


def test_transfer_pairs_expand_every_target_and_name_bad_entries(tmp_path):
    subjects = [Subject("alice", "synthetic:0"), Subject("bob", "synthetic:1")]
    driving = load_driving({"dance": "synthetic:2"}, subjects, tmp_path)
    assert transfer_pairs(["dance -> *", "bob -> alice"], subjects, driving) == [
        ("dance", "alice"), ("dance", "bob"), ("bob", "alice")
    ]  # fmt: skip
    assert transfer_pairs(["alice -> *"], subjects, driving) == [("alice", "bob")]  # not onto itself
    with pytest.raises(ConfigError, match=r"^config key transfer.pairs.0: driving 'carol' is neither"):
        transfer_pairs(["carol -> alice"], subjects, driving)
    with pytest.raises(ConfigError, match=r"^config key transfer.pairs.1: target 'dance' is not a subject"):
        transfer_pairs(["dance -> alice", "bob -> dance"], subjects, driving)
    with pytest.raises(ConfigError, match=r"transfer.driving.alice: alice is already a subject"):
        load_driving({"alice": "synthetic:3"}, subjects, tmp_path)
    with pytest.raises(ConfigError, match=r"video file not found: .*nowhere.mp4"):
        load_driving({"walk": "nowhere.mp4"}, subjects, tmp_path)
