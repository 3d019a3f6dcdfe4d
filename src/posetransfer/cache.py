"""The one place that reads and writes HDF5 caches.

Every cache is one file per subject per stage. It carries provenance attributes, stores
frame-major chunked, compressed and checksummed (Fletcher-32) datasets, is written to a
temporary name and renamed into place, and is opened through a validating reader that turns
a truncated, corrupt or out-of-date file into one line naming the file.

Reproducibility: the content is a pure function of the inputs. The one attribute that is not
is ``created``; it honours ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention), so with
that variable set two runs give byte-identical files. :func:`content_digest` hashes everything
except ``created`` for comparisons without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from posetransfer import __version__
from posetransfer.config import section_hash
from posetransfer.errors import CacheError

SCHEMA_VERSION = 1
PROVENANCE_ATTRS = (
    "kind",
    "schema_version",
    "package_version",
    "config_hash",
    "source_sha256",
    "created",
)
# Rows per chunk for small per-frame arrays (keypoints, boxes): big enough to compress well.
_SMALL_CHUNK_ROWS = 1024
_CHUNK_BYTES = 1 << 20
# What a streamed read holds at once (Cache.iter_rows): 16 frames of 512 x 512 RGB.
STREAM_BYTES = 12 << 20


@dataclass(frozen=True)
class CacheSpec:
    """What a cache of one kind must contain: dataset name -> number of dimensions."""

    datasets: Mapping[str, int]
    attrs: Sequence[str] = field(default_factory=tuple)


# Each stage registers what its cache holds; the reader checks it.
SPECS: dict[str, CacheSpec] = {
    "frames": CacheSpec(
        datasets={
            "frames": 4,
            "source_index": 1,
            "timestamps": 1,
            "person_box": 2,
            "person_found": 1,
        },
        attrs=("fps", "source_fps", "crop_box", "resolution", "source_size", "source_frames"),
    ),
    # BODY_25 (x, y, confidence) in frame pixels, smoothed and raw; MediaPipe world landmarks
    # (33, xyz + visibility, metres, hip-centred); skeleton label images; valid = person found.
    "pose2d": CacheSpec(
        datasets={"keypoints": 3, "keypoints_raw": 3, "world_landmarks": 3, "skeleton": 4, "valid": 1},
        attrs=("backend", "resolution", "keypoint_order"),
    ),
    # Soft person mask in [0, 1] (uint8, /255) and the binary mask at the configured threshold.
    "masks": CacheSpec(datasets={"soft": 3, "mask": 3}, attrs=("backend", "threshold", "resolution")),
    # Pair i is frame i -> i+1: forward flow, backward flow (i+1 -> i), and the confidence of
    # each (forward-backward check x colour constancy); float16, pixels at the cache's resolution.
    "flow": CacheSpec(
        datasets={"forward": 4, "backward": 4, "confidence_forward": 3, "confidence_backward": 3},
        attrs=("backend", "resolution", "consistency_px"),
    ),
    # The static background (RGB uint8), which pixels were seen uncovered, and how many times.
    "background": CacheSpec(
        datasets={"background": 3, "seen": 2, "seen_count": 2},
        attrs=("resolution", "seen_fraction"),
    ),
    # The fitted body: Anny pose parameters per frame, one phenotype, posed vertices and joints
    # in camera space, projected BODY_25-compatible COCO-23 joints and per-frame residuals.
    "body3d": CacheSpec(
        datasets={
            "deltas": 4,
            "phenotype": 1,
            "vertices": 3,
            "faces": 2,
            "joints3d": 3,
            "joints2d": 3,
            "residual_px": 1,
            "fitted": 1,
            "constrained": 1,
        },
        attrs=("backend", "resolution", "camera_K"),
    ),
    # Per frame: the 3D label (uniform Laplacian of the fitted mesh, [-1, 1], float16), the
    # DensePose-layout IUV image (I, U*255, V*255) and the rendered body mask.
    "labels3d": CacheSpec(
        datasets={"laplacian": 4, "iuv": 4, "mask": 3, "fitted": 1},
        attrs=("resolution", "laplacian", "laplacian_scale"),
    ),
    # The initial texture: 24 parts x S x S RGB (mean of the unwrapped frames) and texel counts.
    "texture": CacheSpec(datasets={"atlas": 4, "count": 3}, attrs=("size", "fill")),
    "synthetic_truth": CacheSpec(
        datasets={
            "mask": 3,
            "face": 3,
            "bary": 4,
            "keypoints": 3,
            "vertices": 3,
            "background": 3,
        },
        attrs=("fps", "width", "height", "camera_K", "camera_R", "camera_t"),
    ),
}


def file_sha256(path: str | Path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def _created_timestamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
        if epoch
        else dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    )
    return moment.isoformat()


class CacheWriter:
    """A cache being written. Use :func:`write_cache`, which renames it into place on success."""

    def __init__(self, handle: h5py.File, scratch_prefix: Path | None = None) -> None:
        self._file = handle
        self._scratch_prefix = scratch_prefix or Path(f"{handle.filename}.rows")
        self._open_rows: list[RowWriter] = []  # in creation order; the first writes to the file

    @property
    def attrs(self) -> h5py.AttributeManager:
        return self._file.attrs

    def frame_dataset(
        self, name: str, num_frames: int, frame_shape: Sequence[int], dtype: np.dtype | type
    ) -> h5py.Dataset:
        """An empty (N, *frame_shape) dataset, one chunk per frame, to be filled frame by frame."""
        if num_frames < 1:
            raise ValueError(f"dataset {name}: need at least one frame, got {num_frames}")
        return self._file.create_dataset(
            name,
            shape=(num_frames, *frame_shape),
            dtype=dtype,
            chunks=(1, *frame_shape),
            **_FILTERS,
        )

    def array(self, name: str, data: np.ndarray) -> h5py.Dataset:
        """A per-frame array written at once, chunked along frames (about 1 MiB per chunk at most)."""
        if self._open_rows:
            raise RuntimeError(f"dataset {name}: close the streamed datasets before writing arrays")
        data = np.ascontiguousarray(data)
        chunks = None
        if data.ndim and data.size:
            chunks = (_chunk_rows(len(data), data[0].nbytes), *data.shape[1:])
        return self._file.create_dataset(name, data=data, chunks=chunks, **_FILTERS)

    def rows(self, name: str, num_rows: int, row_shape: Sequence[int], dtype: np.dtype | type) -> RowWriter:
        """A per-frame dataset filled by appending rows in order, stored as :meth:`array` stores it.

        Memory stays at one chunk, whatever ``num_rows``. The file's bytes equal those of
        :meth:`array` given all rows at once: the first open row writer writes whole chunks
        straight into the file; rows appended to a later one while an earlier one is open go to
        a scratch file beside the cache and are copied in when every earlier one has closed, so
        datasets lie in the file one after another, as if written in turn.
        """
        writer = RowWriter(self, name, num_rows, tuple(row_shape), np.dtype(dtype))
        self._open_rows.append(writer)
        if len(self._open_rows) == 1:
            writer._start_in_file()
        return writer

    def _row_writer_closed(self) -> None:
        """Retire finished writers at the head of the queue; the next one moves into the file."""
        while self._open_rows and not self._open_rows[0]._open:
            self._open_rows.pop(0)
            if self._open_rows:
                self._open_rows[0]._start_in_file()

    def _finish(self) -> None:
        if self._open_rows:
            names = ", ".join(writer.name for writer in self._open_rows)
            raise RuntimeError(f"streamed datasets not closed: {names}")

    def _discard_scratch(self) -> None:
        for path in self._scratch_prefix.parent.glob(f"{self._scratch_prefix.name}.*"):
            path.unlink(missing_ok=True)


def _chunk_rows(num_rows: int, row_nbytes: int) -> int:
    """Rows per chunk of a per-frame array: about 1 MiB, at most 1024 rows."""
    return max(1, min(num_rows, _SMALL_CHUNK_ROWS, _CHUNK_BYTES // max(1, row_nbytes)))


class RowWriter:
    """One per-frame dataset being appended to (see :meth:`CacheWriter.rows`).

    Use as a context manager, or call :meth:`close` once every row is appended.
    """

    def __init__(
        self, owner: CacheWriter, name: str, num_rows: int, row_shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        if num_rows < 1:
            raise ValueError(f"dataset {name}: need at least one row, got {num_rows}")
        self.name, self.num_rows, self.row_shape, self.dtype = name, num_rows, row_shape, dtype
        self._owner = owner
        self._chunk = _chunk_rows(num_rows, int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize)
        self._appended = 0  # rows given to append()
        self._stored = 0  # rows in the file's dataset
        self._pending: list[np.ndarray] = []  # rows of a chunk not yet full
        self._dataset: h5py.Dataset | None = None
        self._scratch_path = Path(f"{owner._scratch_prefix}.{len(owner._open_rows)}.{name}")
        self._scratch: Any = None
        self._in_file = False
        self._open = True

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()

    def append(self, rows: np.ndarray) -> None:
        """Append rows ``(n, *row_shape)``, converted to the dataset's dtype."""
        if not self._open:
            raise RuntimeError(f"dataset {self.name}: append after close")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(
                f"dataset {self.name}: rows of shape {rows.shape[1:]}, expected {self.row_shape}"
            )
        if self._appended + len(rows) > self.num_rows:
            raise ValueError(f"dataset {self.name}: more than the {self.num_rows} rows declared")
        self._appended += len(rows)
        if self._in_file:
            self._store(rows)
            return
        if self._scratch is None:
            self._scratch = open(self._scratch_path, "wb")  # noqa: SIM115 (closed in _start_in_file)
        self._scratch.write(rows.tobytes())

    def close(self) -> None:
        """Check every declared row was appended and let the next streamed dataset into the file."""
        if not self._open:
            return
        if self._appended != self.num_rows:
            raise ValueError(f"dataset {self.name}: {self._appended} rows appended, {self.num_rows} declared")
        self._open = False
        if self._in_file:
            self._dataset = None  # the last reference: HDF5 flushes the chunks now, as array() does
        self._owner._row_writer_closed()

    def _start_in_file(self) -> None:
        """Create the dataset (now, so it follows the one before it) and copy in the scratch rows."""
        self._dataset = self._owner._file.create_dataset(
            self.name,
            shape=(self.num_rows, *self.row_shape),
            dtype=self.dtype,
            chunks=(self._chunk, *self.row_shape),
            **_FILTERS,
        )
        self._in_file = True
        if self._scratch is not None:
            self._scratch.close()
            row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
            with open(self._scratch_path, "rb") as scratch:
                while block := scratch.read(self._chunk * row_bytes):
                    self._store(np.frombuffer(block, self.dtype).reshape(-1, *self.row_shape))
            self._scratch_path.unlink()
            self._scratch = None
        if not self._open:
            self._dataset = None

    def _store(self, rows: np.ndarray) -> None:
        """Write whole chunks (and the last, short one); keep the rest until its chunk is full."""
        self._pending.append(rows.copy())  # the caller may reuse its buffer
        pending = sum(len(block) for block in self._pending)
        last = self._stored + pending == self.num_rows
        if pending < self._chunk and not last:
            return
        rows = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        whole = len(rows) if last else len(rows) // self._chunk * self._chunk
        self._dataset[self._stored : self._stored + whole] = rows[:whole]
        self._stored += whole
        self._pending = [rows[whole:]] if whole < len(rows) else []


# gzip (portable: readable by any HDF5), shuffle for better ratios, Fletcher-32 to catch corruption.
_FILTERS: dict[str, Any] = {
    "compression": "gzip",
    "compression_opts": 4,
    "shuffle": True,
    "fletcher32": True,
    "track_times": False,  # no wall-clock time inside the file, so runs are byte-identical
}


@contextmanager
def write_cache(
    path: str | Path,
    kind: str,
    config_section: Any,
    source_sha256: str,
) -> Iterator[CacheWriter]:
    """Write a cache atomically: to a temporary name beside ``path``, renamed on success only.

    On any exception the temporary file is removed, so nothing half-written is left behind.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown cache kind {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w", libver=("v110", "v110"), locking=False) as handle:
            handle.attrs["kind"] = kind
            handle.attrs["schema_version"] = SCHEMA_VERSION
            handle.attrs["package_version"] = __version__
            handle.attrs["config_hash"] = section_hash(config_section)
            handle.attrs["source_sha256"] = source_sha256
            handle.attrs["created"] = _created_timestamp()
            writer = CacheWriter(handle, path.with_name(f".{path.name}.{os.getpid()}.rows"))
            try:
                yield writer
                writer._finish()
            finally:
                writer._discard_scratch()
            _check_contents(handle, kind, path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_contents(handle: h5py.File, kind: str, path: Path) -> None:
    spec = SPECS[kind]
    for name, ndim in spec.datasets.items():
        if name not in handle:
            raise CacheError(f"{kind} cache lacks dataset {name!r}", path)
        if handle[name].ndim != ndim:
            raise CacheError(
                f"{kind} cache dataset {name!r} has {handle[name].ndim} dimensions, expected {ndim}",
                path,
            )
    for name in (*PROVENANCE_ATTRS, *spec.attrs):
        if name not in handle.attrs:
            raise CacheError(f"{kind} cache lacks attribute {name!r}", path)


class Cache:
    """A validated, open cache (read-only). Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, handle: h5py.File) -> None:
        self.path = path
        self._file = handle

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def kind(self) -> str:
        return str(self._file.attrs["kind"])

    @property
    def attrs(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self._file.attrs.items()}

    def __contains__(self, name: str) -> bool:
        return name in self._file

    def dataset(self, name: str) -> h5py.Dataset:
        if name not in self._file:
            raise CacheError(f"{self.kind} cache has no dataset {name!r}", self.path)
        return self._file[name]

    def read(self, name: str, index: Any = ()) -> np.ndarray:
        """Read a dataset (or a slice of it); a corrupt chunk becomes a one-line CacheError."""
        try:
            return self.dataset(name)[index]
        except OSError as exc:
            raise CacheError(
                f"dataset {name!r} is corrupt ({_first_line(exc)}); {remedy(self.path, self.kind)}", self.path
            ) from exc

    def iter_rows(self, name: str, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Rows ``[start, stop)`` of a dataset one by one, read a few chunks at a time.

        Memory stays at about :data:`STREAM_BYTES` whatever the dataset's length.
        """
        dataset = self.dataset(name)
        stop = len(dataset) if stop is None else min(stop, len(dataset))
        row_bytes = max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64)))
        step = max(1, STREAM_BYTES // row_bytes)
        if dataset.chunks:  # whole chunks, so none is decompressed twice
            step = max(1, step // dataset.chunks[0]) * dataset.chunks[0]
        for block_start in range(start, stop, step):
            yield from self.read(name, slice(block_start, min(stop, block_start + step)))

    def names(self) -> list[str]:
        return sorted(self._file.keys())

    def verify(self) -> None:
        """Read every chunk of every dataset, so checksums catch any corrupted byte."""
        for name in self.names():
            dataset = self.dataset(name)
            step = dataset.chunks[0] if dataset.chunks else max(len(dataset), 1)
            for start in range(0, max(len(dataset), 1), step):
                self.read(name, slice(start, start + step))


def open_cache(path: str | Path, kind: str | None = None) -> Cache:
    """Open and validate a cache; every problem is a one-line :class:`CacheError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CacheError("cache file not found", path)
    if path.stat().st_size == 0:
        raise CacheError("cache file is empty (0 bytes)", path)
    try:
        handle = h5py.File(path, "r", locking=False)
    except OSError as exc:
        problem = f"cannot open as HDF5, the file is truncated or corrupt ({_first_line(exc)})"
        raise CacheError(f"{problem}; {remedy(path, kind)}", path) from exc
    try:
        found_kind = str(handle.attrs.get("kind", ""))
        if found_kind not in SPECS:
            raise CacheError(f"not a posetransfer cache (kind {found_kind!r})", path)
        if kind is not None and found_kind != kind:
            raise CacheError(f"expected a {kind} cache, found a {found_kind} cache", path)
        version = int(handle.attrs.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise CacheError(
                f"cache schema version {version}, this posetransfer reads version "
                f"{SCHEMA_VERSION}: delete the file and re-run the workflow to rebuild it",
                path,
            )
        _check_contents(handle, found_kind, path)
        for name in SPECS[found_kind].datasets:
            dataset = handle[name]
            if len(dataset):  # read first and last rows: catches truncated chunk data quickly
                dataset[0]
                dataset[-1]
    except CacheError:
        handle.close()
        raise
    except (OSError, KeyError, ValueError) as exc:
        handle.close()
        raise CacheError(f"cache is corrupt ({_first_line(exc)}); {remedy(path, kind)}", path) from exc
    return Cache(path, handle)


def remedy(path: str | Path, kind: str | None) -> str:
    """What to do about a broken cache: which file to delete, or which rule to force."""
    path = Path(path)
    if path.name == "labels3d_truth.h5":
        rule = "truth_labels"
    elif "transfer" in path.parts:
        rule = "transfer"
    else:
        rule = {"synthetic_truth": "synthesize", None: path.stem}.get(kind, kind or path.stem)
    return f"delete {path} and run the workflow again, or run `snakemake --forcerun {rule}`"


def add_warnings(attrs: h5py.AttributeManager, warnings: Sequence[str]) -> None:
    """Record what a user should know about the input (read by the subject's report).

    Nothing is written when there is nothing to say, so clean inputs give the same bytes as before.
    """
    if warnings:
        attrs["warnings"] = json.dumps(list(warnings))


def read_warnings(path: str | Path) -> list[str]:
    """The warnings a stage recorded in its cache; none for a missing or unreadable cache."""
    try:
        with open_cache(path) as opened:
            return json.loads(opened.attrs.get("warnings", "[]"))
    except (CacheError, ValueError):
        return []


def describe(path: str | Path, verify: bool = False) -> str:
    """A readable summary of a cache: attributes, datasets, and whether it is valid."""
    lines = [f"{path}"]
    with open_cache(path) as cache:
        lines.append("attributes:")
        for key, value in cache.attrs.items():
            lines.append(f"  {key}: {_short(value)}")
        lines.append("datasets:")
        for name in cache.names():
            dataset = cache.dataset(name)
            filters = ", ".join(f for f in ("compression", "shuffle", "fletcher32") if getattr(dataset, f))
            lines.append(
                f"  {name}: shape {dataset.shape} {dataset.dtype}, chunks {dataset.chunks}"
                f"{', ' + filters if filters else ''}"
            )
        if verify:
            cache.verify()
        lines.append(f"valid: yes ({'every chunk checksummed' if verify else 'structure checked'})")
    return "\n".join(lines)


def content_digest(path: str | Path) -> str:
    """sha256 over every dataset and attribute except ``created``: equal for equal content."""
    digest = hashlib.sha256()
    with open_cache(path) as cache:
        for key, value in sorted(cache.attrs.items()):
            if key != "created":
                digest.update(f"{key}={value!r};".encode())
        for name in cache.names():
            data = cache.read(name)
            digest.update(f"{name}:{data.dtype}:{data.shape};".encode())
            digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _short(value: Any, limit: int = 100) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
