import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import tiny_frames_cache

from posetransfer import cache
from posetransfer.errors import CacheError


def test_cache_round_trip_with_provenance(tmp_path):
    path = tiny_frames_cache(tmp_path / "frames.h5")
    with cache.open_cache(path, "frames") as opened:
        attrs = opened.attrs
        assert attrs["kind"] == "frames"
        assert attrs["schema_version"] == cache.SCHEMA_VERSION
        assert attrs["source_sha256"] == "ab" * 32
        assert attrs["config_hash"] == cache.section_hash({"resolution": 32})
        assert attrs["package_version"]
        assert attrs["created"].startswith("20")
        frames = opened.dataset("frames")
        assert frames.chunks == (1, 32, 32, 3), "frame-major chunks: one frame per chunk"
        assert frames.compression == "gzip" and frames.fletcher32
        assert opened.read("frames", 3).max() == 3
        opened.verify()


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        tiny_frames_cache(tmp_path / "frames.h5", fail_midway=True)
    assert list(tmp_path.iterdir()) == []


def test_incomplete_cache_is_refused_and_removed(tmp_path):
    with (
        pytest.raises(CacheError, match=r"f\.h5: frames cache lacks dataset"),
        cache.write_cache(tmp_path / "f.h5", "frames", {}, "x") as writer,
    ):
        writer.frame_dataset("frames", 1, (8, 8, 3), np.uint8)
    assert list(tmp_path.iterdir()) == []


def test_same_content_gives_byte_identical_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = tiny_frames_cache(tmp_path / "a.h5")
    second = tiny_frames_cache(tmp_path / "b.h5")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    third = tiny_frames_cache(tmp_path / "c.h5", values=1)
    assert cache.content_digest(first) != cache.content_digest(third)


def test_content_digest_ignores_only_the_creation_time(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = tiny_frames_cache(tmp_path / "a.h5")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    second = tiny_frames_cache(tmp_path / "b.h5")
    assert first.read_bytes() != second.read_bytes()
    assert cache.content_digest(first) == cache.content_digest(second)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_cache_is_one_line_error(tmp_path, keep):
    path = tiny_frames_cache(tmp_path / "frames.h5")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CacheError) as error:
        cache.open_cache(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "truncated or corrupt" in message
    assert "\n" not in message


def test_corrupt_chunk_is_caught_by_its_checksum(tmp_path):
    path = tiny_frames_cache(tmp_path / "frames.h5")
    with h5py.File(path, "r") as handle:
        offset = handle["frames"].id.get_chunk_info(2).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with cache.open_cache(path) as opened, pytest.raises(CacheError, match="dataset 'frames' is corrupt"):
        opened.verify()


def test_other_schema_version_and_kind_are_refused(tmp_path):
    path = tiny_frames_cache(tmp_path / "frames.h5")
    with pytest.raises(CacheError, match="expected a synthetic_truth cache, found a frames cache"):
        cache.open_cache(path, "synthetic_truth")
    with h5py.File(path, "r+") as handle:
        handle.attrs["schema_version"] = 0
    with pytest.raises(CacheError, match="schema version 0"):
        cache.open_cache(path)


def test_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(CacheError, match="cache file not found"):
        cache.open_cache(tmp_path / "nope.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(CacheError, match=r"empty \(0 bytes\)"):
        cache.open_cache(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle["x"] = 1
    with pytest.raises(CacheError, match="not a posetransfer cache"):
        cache.open_cache(tmp_path / "foreign.h5")


def test_describe_lists_datasets_attributes_and_validity(tmp_path):
    text = cache.describe(tiny_frames_cache(tmp_path / "frames.h5"), verify=True)
    assert "frames: shape (4, 32, 32, 3) uint8" in text
    assert "source_sha256: " + "ab" * 32 in text
    assert "valid: yes" in text


def _masks_cache(path: Path, soft: np.ndarray, binary: np.ndarray, chunk: int | None) -> Path:
    """A masks cache written at once (``chunk`` None) or streamed ``chunk`` rows at a time."""
    with cache.write_cache(path, "masks", {"t": 1}, "cd" * 32) as writer:
        if chunk is None:
            writer.array("soft", soft)
            writer.array("mask", binary)
        else:
            with (
                writer.rows("soft", len(soft), soft.shape[1:], np.uint8) as soft_rows,
                writer.rows("mask", len(binary), binary.shape[1:], bool) as mask_rows,
            ):
                for start in range(0, len(soft), chunk):  # interleaved, as a streaming stage does
                    soft_rows.append(soft[start : start + chunk])
                    mask_rows.append(binary[start : start + chunk])
        writer.array("extra", np.arange(3))
        writer.attrs.update(backend="x", threshold=0.5, resolution=soft.shape[1])
    return path


@pytest.mark.parametrize("chunk", [1, 7, 40, 1000])
def test_streamed_rows_give_the_bytes_of_one_write(tmp_path, chunk):
    rng = np.random.default_rng(0)
    soft = rng.integers(0, 255, (90, 100, 120), dtype=np.uint8)  # 12 kB rows: 87 rows per chunk
    soft[::3] = 0  # something to compress
    binary = soft > 127
    whole = _masks_cache(tmp_path / "whole.h5", soft, binary, None)
    streamed = _masks_cache(tmp_path / "streamed.h5", soft, binary, chunk)
    assert whole.read_bytes() == streamed.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.h5", "whole.h5"], "no scratch left"


def test_streamed_rows_short_or_failed_leave_nothing(tmp_path):
    out = tmp_path / "masks.h5"
    with (
        pytest.raises(ValueError, match="soft: 3 rows appended, 4 declared"),
        cache.write_cache(out, "masks", {}, "x") as writer,
        writer.rows("soft", 4, (8, 8), np.uint8) as rows,
    ):
        rows.append(np.zeros((3, 8, 8)))
    with pytest.raises(RuntimeError, match="killed"), cache.write_cache(out, "masks", {}, "x") as writer:
        writer.rows("soft", 4, (8, 8), np.uint8).append(np.zeros((4, 8, 8)))
        writer.rows("mask", 4, (8, 8), bool).append(np.zeros((2, 8, 8)))  # to a scratch file
        raise RuntimeError("killed")
    with (
        pytest.raises(ValueError, match="more than the 4 rows declared"),
        cache.write_cache(out, "masks", {}, "x") as writer,
    ):
        writer.rows("soft", 4, (8, 8), np.uint8).append(np.zeros((5, 8, 8)))
    assert list(tmp_path.iterdir()) == []


def test_iter_rows_streams_what_read_returns(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "STREAM_BYTES", 3 * 32 * 32 * 3)  # 3 frames a read
    path = tiny_frames_cache(tmp_path / "frames.h5")
    with cache.open_cache(path, "frames") as opened:
        assert np.array_equal(np.stack(list(opened.iter_rows("frames"))), opened.read("frames"))
        assert np.array_equal(np.stack(list(opened.iter_rows("frames", 1, 3))), opened.read("frames")[1:3])
        assert list(opened.iter_rows("source_index")) == [0, 1, 2, 3]
