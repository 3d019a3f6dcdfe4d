"""Shared fixtures: the repository, the real clips in ../shared/data, small videos made here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_VIDEOS = ("juggler_a.mp4", "dogplay_b.mp4", "squats_c.mp4")

# Same-seed runs must give byte-identical caches; fix the one time-stamped attribute.
os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")
# Weights found with `auto` (VGG19, Inception, AlexNet, RAFT) would switch terms on where a machine
# happens to have them; the tests decide what is there: an empty torch cache unless a test fills it.
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="posetransfer-torch-home-")


def real_video(name: str) -> Path:
    """A real clip from ../shared/data, or skip where that folder is absent (users' machines)."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real test video {path} is absent (../shared/data exists only beside CI checkouts)")
    return path


@pytest.fixture(scope="session")
def anny_cache_dir() -> Path:
    """Anny's model cache, shared with the workflow's default so it is built once (~45 s)."""
    path = Path(os.environ.get("POSETRANSFER_TEST_ANNY_CACHE", REPO / "results" / ".anny"))
    path.mkdir(parents=True, exist_ok=True)
    return path


VideoMaker = Callable[..., Path]


def encode(
    path: Path, frames: Sequence[np.ndarray], fps: float, codec: str = "libx264", pix_fmt: str = "yuv420p"
) -> Path:
    """Write RGB frames with PyAV in any container/codec (test inputs only)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.thread_count = 1
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> VideoMaker:
    def make(
        name: str,
        frames: Sequence[np.ndarray],
        fps: float = 24.0,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
    ) -> Path:
        return encode(tmp_path / name, frames, fps, codec, pix_fmt)

    return make


def moving_squares(count: int = 6, height: int = 96, width: int = 128) -> list[np.ndarray]:
    """Frames with no person in them: a square sliding over a gradient."""
    frames = []
    for index in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        image[20:50, 10 + 8 * index : 40 + 8 * index] = (255, 255, 0)
        frames.append(image)
    return frames


@pytest.fixture(scope="session")
def synthetic_clip(tmp_path_factory, anny_cache_dir) -> tuple[Path, Path]:
    """A small rendered synthetic subject: (video.mp4, truth.h5), made once per test session."""
    from posetransfer import synthesize

    folder = tmp_path_factory.mktemp("synthetic_clip")
    video, truth = folder / "video.mp4", folder / "truth.h5"
    params = synthesize.SyntheticParams(width=320, height=384, num_frames=16, fps=12.0, seed=0)
    synthesize.run(video, truth, folder / "preview.mp4", params, anny_cache_dir, device="cpu")
    return video, truth


@pytest.fixture(scope="session")
def synthetic_frames(synthetic_clip, tmp_path_factory) -> Path:
    """The synthetic clip's frames cache at 256 px (the resolution the 2D label tests speak of)."""
    from posetransfer import frames

    folder = tmp_path_factory.mktemp("synthetic_frames")
    out = folder / "frames.h5"
    frames.run(synthetic_clip[0], out, folder / "frames.png", frames.FramesParams(resolution=256))
    return out


@pytest.fixture(scope="session")
def synthetic_pose2d(synthetic_frames, tmp_path_factory) -> Path:
    """The pose2d cache of the synthetic clip's frames (default parameters)."""
    from posetransfer import pose2d

    out = tmp_path_factory.mktemp("synthetic_pose2d") / "pose2d.h5"
    pose2d.run(synthetic_frames, out, out.with_suffix(".mp4"), pose2d.Pose2dParams())
    return out


@pytest.fixture(scope="session")
def synthetic_body3d(synthetic_pose2d, synthetic_frames, anny_cache_dir, tmp_path_factory) -> Path:
    """The body fit of the synthetic clip (default parameters, CPU), with its overlay video."""
    from posetransfer import body3d

    out = tmp_path_factory.mktemp("synthetic_body3d") / "body3d.h5"
    params = body3d.Body3dParams()
    body3d.run(
        synthetic_pose2d, synthetic_frames, out, params, anny_cache_dir, "cpu", out.with_suffix(".mp4"), 1.0
    )
    return out


def truth_in_crop(truth: Path, frames_h5: Path) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic truth's BODY_25 keypoints and masks mapped into a frames cache's crop."""
    from posetransfer import cache
    from posetransfer.frames import CropBox, crop_and_resize

    with cache.open_cache(truth) as gt, cache.open_cache(frames_h5) as cached:
        x0, y0, side = (int(v) for v in cached.attrs["crop_box"])
        resolution = int(cached.attrs["resolution"])
        keypoints, masks = gt.read("keypoints"), gt.read("mask")
    scale = resolution / side
    keypoints[..., 0] = (keypoints[..., 0] - x0) * scale
    keypoints[..., 1] = (keypoints[..., 1] - y0) * scale
    box = CropBox(x0, y0, side)
    as_rgb = np.repeat(masks[..., None].astype(np.uint8) * 255, 3, axis=-1)
    cropped = np.stack([crop_and_resize(m, box, resolution, "constant")[..., 0] > 127 for m in as_rgb])
    return keypoints, cropped


def rewrite_frames(source: Path, out: Path, frames: np.ndarray) -> Path:
    """A copy of a frames cache with other pixels (e.g. frames where the person left)."""
    from posetransfer import cache

    with cache.open_cache(source, "frames") as cached:
        arrays = {name: cached.read(name) for name in cache.SPECS["frames"].datasets}
        attrs = {key: cached.attrs[key] for key in cache.SPECS["frames"].attrs}
        source_sha256 = cached.attrs["source_sha256"]
    arrays["frames"] = frames
    with cache.write_cache(out, "frames", {"test": "rewritten"}, source_sha256) as writer:
        for name, array in arrays.items():
            writer.array(name, array)
        writer.attrs.update(attrs)
    return out


@pytest.fixture(scope="session")
def synthetic_subject_dir(
    synthetic_frames, synthetic_pose2d, synthetic_body3d, anny_cache_dir, tmp_path_factory
) -> Path:
    """A folder with every cache training reads, for the synthetic clip (16 frames at 256 px)."""
    import shutil

    from posetransfer import background, flow, labels3d, masks, texture

    folder = tmp_path_factory.mktemp("synthetic_subject")
    for source, name in (
        (synthetic_frames, "frames.h5"),
        (synthetic_pose2d, "pose2d.h5"),
        (synthetic_body3d, "body3d.h5"),
    ):
        shutil.copy(source, folder / name)
    masks.run(folder / "frames.h5", folder / "masks.h5", folder / "masks.png", masks.MasksParams())
    flow.run(folder / "frames.h5", folder / "flow.h5", folder / "flow.png", flow.FlowParams())
    background.run(
        folder / "frames.h5",
        folder / "masks.h5",
        folder / "background.h5",
        folder / "bg.png",
        background.BackgroundParams(),
    )
    labels3d.run(folder / "body3d.h5", folder / "labels3d.h5", folder / "labels3d.png", anny_cache_dir)
    texture.run(
        folder / "frames.h5",
        folder / "labels3d.h5",
        folder / "texture.h5",
        folder / "texture.png",
        texture.TextureParams(),
    )
    return folder


def tiny_frames_cache(path: Path, fail_midway: bool = False, values: int = 0) -> Path:
    """A 4-frame, 32 px frames cache; frame i holds the value i + ``values``."""
    from posetransfer import cache

    with cache.write_cache(path, "frames", {"resolution": 32}, source_sha256="ab" * 32) as writer:
        frames = writer.frame_dataset("frames", 4, (32, 32, 3), np.uint8)
        for index in range(4):
            frames[index] = index + values
            if fail_midway and index == 1:
                raise RuntimeError("killed")
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
