"""labels3d and texture: Laplacian, IUV against the synthetic truth, the texture atlas."""

import math

import numpy as np
import pytest

from posetransfer import cache, labels3d, texture
from posetransfer.labels3d import cotangent_laplacian
from posetransfer.texture import TextureParams


def _sphere(radius: float, rings: int = 40) -> tuple[np.ndarray, np.ndarray]:
    theta, phi = np.meshgrid(
        np.linspace(0.1, math.pi - 0.1, rings),
        np.linspace(0, 2 * math.pi, 2 * rings, endpoint=False),
        indexing="ij",
    )
    points = radius * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    faces = []
    for i in range(rings - 1):
        for j in range(2 * rings):
            a, b = i * 2 * rings + j, i * 2 * rings + (j + 1) % (2 * rings)
            c, d = a + 2 * rings, b + 2 * rings
            faces += [[a, c, b], [b, c, d]]
    return points.reshape(-1, 3), np.array(faces)


def test_cotangent_laplacian_is_the_mean_curvature_normal():
    vertices, faces = _sphere(0.1)
    laplacian = cotangent_laplacian(vertices, faces).reshape(40, 80, 3)[10:30]
    inner = vertices.reshape(40, 80, 3)[10:30]
    length = np.linalg.norm(laplacian, axis=-1)
    assert length.mean() == pytest.approx(2 / 0.1, rel=0.01)  # |2 H n| = 2 / r on a sphere
    inward = -np.einsum("...c,...c->...", laplacian, inner) / (length * 0.1)
    assert inward.min() > 0.999  # it points to the centre
    plane = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]])
    assert np.allclose(cotangent_laplacian(plane, np.array([[0, 1, 2], [1, 3, 2]]))[:, 2], 0)


@pytest.fixture(scope="module")
def synthetic_labels(synthetic_body3d, anny_cache_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels3d")
    labels3d.run(synthetic_body3d, folder / "labels3d.h5", folder / "labels3d.png", anny_cache_dir)
    return folder


def test_fitted_iuv_and_3d_labels_match_the_truth(
    synthetic_labels, synthetic_clip, synthetic_frames, anny_cache_dir
):
    folder = synthetic_labels
    scores = labels3d.run_truth(
        synthetic_clip[1], synthetic_frames, folder / "truth.h5", anny_cache_dir, folder / "labels3d.h5"
    )
    # Measured on this clip: part accuracy 0.93, UV error 0.07, body IoU 0.88 (48 frames at 256 px).
    assert scores["part_accuracy"] >= 0.85
    assert scores["uv_error"] < 0.12
    assert scores["body_iou"] > 0.8
    assert scores["label3d_error"] < 0.3
    with cache.open_cache(folder / "labels3d.h5", "labels3d") as labels:
        label, parts = labels.read("laplacian"), labels.read("iuv")[..., 0]
        mask = labels.read("mask")
    assert label.dtype == np.float16 and np.abs(label).max() <= 1.0
    assert not label[~mask].any() and not parts[~mask].any()
    assert set(np.unique(parts[mask])) >= {2, 23, 24}  # the torso's front and the head show
    assert (folder / "labels3d.png").stat().st_size > 10_000


def test_texture_atlas_from_the_synthetic_subject(synthetic_labels, synthetic_frames):
    folder = synthetic_labels
    texture.run(
        synthetic_frames,
        folder / "labels3d.h5",
        folder / "texture.h5",
        folder / "texture.png",
        TextureParams(size=64),
    )
    with cache.open_cache(folder / "texture.h5", "texture") as cached:
        atlas, count = cached.read("atlas"), cached.read("count")
    assert atlas.shape == (24, 64, 64, 3) and atlas.dtype == np.uint8
    assert count[1].sum() > 0  # the torso front (part 2) was seen
    assert cached_png_shape(folder / "texture.png") == (6 * 64, 4 * 64, 3)


def cached_png_shape(path):
    import cv2

    return cv2.imread(str(path)).shape


def test_imported_iuv_replaces_the_rendered_one(
    synthetic_labels, synthetic_body3d, synthetic_frames, anny_cache_dir
):
    import cv2

    from posetransfer.errors import PosetransferError
    from posetransfer.labels3d import IuvParams, external_iuv

    folder = synthetic_labels / "import"
    folder.mkdir()
    with cache.open_cache(synthetic_labels / "labels3d.h5") as labels:
        rendered = labels.read("iuv")
    flipped = rendered[:, :, ::-1].copy()  # a different, valid IUV: mirrored images
    for index, image in enumerate(flipped):
        cv2.imwrite(str(folder / f"frame_{index}.png"), image)
    params = IuvParams(backend="import", import_dir=str(synthetic_labels / "{subject}"))
    external = external_iuv(params, synthetic_frames, subject="import")
    out = synthetic_labels / "imported.h5"
    labels3d.run(synthetic_body3d, out, synthetic_labels / "imported.png", anny_cache_dir, external=external)
    with cache.open_cache(out) as labels:
        assert np.array_equal(labels.read("iuv"), flipped)
    (folder / "frame_0.png").unlink()
    with pytest.raises(PosetransferError, match=f"{folder}: expected {len(rendered)} IUV PNGs"):
        external_iuv(params, synthetic_frames, subject="import")


def test_texture_streams_blocks_with_the_sums_of_one_unwrap(synthetic_labels, synthetic_frames, tmp_path):
    """A 90-frame subject (the clip tiled, some frames unfitted) read in blocks equals one unwrap."""
    from conftest import rewrite_frames

    from posetransfer import iuv

    with (
        cache.open_cache(synthetic_frames, "frames") as frames_cache,
        cache.open_cache(synthetic_labels / "labels3d.h5", "labels3d") as labels,
    ):
        order = np.arange(90) % len(frames_cache.dataset("frames"))
        frames = frames_cache.read("frames")[order]
        arrays = {name: labels.read(name)[order] for name in ("laplacian", "iuv", "mask", "fitted")}
        attrs = {key: labels.attrs[key] for key in cache.SPECS["labels3d"].attrs}
    arrays["fitted"][[3, 40, 41, 77]] = False
    long_frames = rewrite_frames(synthetic_frames, tmp_path / "frames.h5", frames)
    with cache.write_cache(tmp_path / "labels3d.h5", "labels3d", {}, "x") as writer:
        for name, array in arrays.items():
            writer.array(name, array)
        writer.attrs.update(attrs)
    params = TextureParams(size=32)
    texture.run(long_frames, tmp_path / "labels3d.h5", tmp_path / "texture.h5", tmp_path / "t.png", params)
    keep = np.flatnonzero(arrays["fitted"])
    parts, u, v = iuv.from_densepose_png(arrays["iuv"][keep])
    atlas, count = texture.unwrap(frames[keep], parts, u, v, params.size, params.fill)
    with cache.open_cache(tmp_path / "texture.h5", "texture") as cached:
        assert np.array_equal(cached.read("atlas"), np.round(np.clip(atlas, 0, 1) * 255).astype(np.uint8))
        assert np.array_equal(cached.read("count"), count)


def test_streamed_labels3d_equal_a_list_of_poses(
    synthetic_labels, synthetic_body3d, anny_cache_dir, tmp_path
):
    """run() reads the fit's vertices as it renders; the cache equals rendering them from memory."""
    from functools import partial

    from posetransfer import iuv
    from posetransfer.body3d import crop_camera
    from posetransfer.raster import Rasterizer

    with cache.open_cache(synthetic_body3d, "body3d") as fit:
        vertices, faces, fitted = fit.read("vertices"), fit.read("faces"), fit.read("fitted")
        K, resolution = np.asarray(fit.attrs["camera_K"]), int(fit.attrs["resolution"])
        source_sha256 = fit.attrs["source_sha256"]
    first = int(np.flatnonzero(fitted)[0])
    rasterizer = Rasterizer(faces, vertices.shape[1], device="cpu", reference_vertices=vertices[first])
    render = partial(
        labels3d.render_labels, rasterizer, faces=faces, camera=crop_camera(K, resolution),
        charts=iuv.anny_charts(anny_cache_dir),
    )  # fmt: skip
    poses = [vertices[index] if fitted[index] else None for index in range(len(vertices))]
    section = {"laplacian": "cotangent", "scale": labels3d.LAPLACIAN_SCALE}
    out = tmp_path / "from_memory.h5"
    labels3d.write_labels(out, section, source_sha256, resolution, poses, render, fitted, "labels3d")
    assert out.read_bytes() == (synthetic_labels / "labels3d.h5").read_bytes()
