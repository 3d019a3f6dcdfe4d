"""The ray-casting rasteriser on meshes whose image is known analytically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.raster import Camera, Rasterizer, interpolate, interpolate_hits


def _front_camera(width: int = 64, height: int = 48) -> Camera:
    """Identity rotation: world = camera frame, looking down +z from the origin."""
    f = 50.0
    return Camera(width, height, f, f, width / 2, height / 2, np.eye(3), np.zeros(3))


def _cube(
    size: float = 1.0, centre: tuple[float, float, float] = (0.0, 0.0, 5.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned cube, outward counter-clockwise triangles."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    vertices = (corners - 0.5) * size + np.asarray(centre)
    faces = np.array([
        [0, 1, 3], [0, 3, 2],  # x = -
        [4, 6, 7], [4, 7, 5],  # x = +
        [0, 4, 5], [0, 5, 1],  # y = -
        [2, 3, 7], [2, 7, 6],  # y = +
        [0, 2, 6], [0, 6, 4],  # z = - (faces the camera)
        [1, 5, 7], [1, 7, 3],  # z = +
    ])  # fmt: skip
    return vertices, faces


def test_camera_project_and_look_at() -> None:
    cam = Camera.look_at((0, -5, 1), (0, 0, 1), (0, 0, 1), 640, 480, 60.0)
    # The target projects to the image centre, which is the corner between the 4 central pixels.
    np.testing.assert_allclose(cam.project(np.array([0.0, 0.0, 1.0])), [320.0, 240.0], atol=1e-9)
    np.testing.assert_allclose(cam.center, [0, -5, 1], atol=1e-12)
    # World up is image up (smaller y), world +x is image right.
    up, right = cam.project(np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 1.0]]))
    assert up[1] < 240 and right[0] > 320
    np.testing.assert_allclose(cam.rotation @ cam.rotation.T, np.eye(3), atol=1e-12)
    assert np.isnan(cam.project(np.array([0.0, -10.0, 1.0]))).all()  # behind the camera
    with pytest.raises(ValueError):
        Camera(10, 10, 1, 1, 5, 5, np.eye(2), np.zeros(3))


def test_pixel_rays_pass_through_pixel_centres() -> None:
    cam = Camera.look_at((0.3, -4, 1.2), (0, 0, 1), (0, 0, 1), 32, 24, 40.0)
    origin, dirs = cam.pixel_rays()
    points = origin + 3.0 * dirs  # depth 3 along every ray
    uv = cam.project(points)
    cols, rows = np.meshgrid(np.arange(32) + 0.5, np.arange(24) + 0.5)
    np.testing.assert_allclose(uv, np.stack([cols, rows], -1), atol=1e-9)
    np.testing.assert_allclose(cam.to_camera(points)[..., 2], 3.0, atol=1e-9)


def test_single_triangle_mask_bary_and_depth() -> None:
    cam = _front_camera()
    # A right triangle in the plane z = 4 covering x in [0, 0.8], y in [0, 0.8] (camera frame).
    vertices = np.array([[0.0, 0.0, 4.0], [0.8, 0.0, 4.0], [0.0, 0.8, 4.0]])
    faces = np.array([[0, 1, 2]])
    raster = Rasterizer(faces, 3, device="cpu").render(vertices, cam)
    assert raster.face.dtype == np.int32 and raster.bary.dtype == np.float32
    # Expected coverage: pixel centres whose ray meets the plane inside the triangle.
    origin, dirs = cam.pixel_rays()
    hits = origin + 4.0 * dirs

    def inside(eps: float) -> np.ndarray:
        x, y = hits[..., 0], hits[..., 1]
        return (x > eps) & (y > eps) & (x + y < 0.8 - eps)

    # Pixel centres exactly on an edge may go either way; all others must be right.
    assert inside(1e-3).sum() > 40
    assert raster.mask[inside(1e-3)].all() and not raster.mask[~inside(-1e-3)].any()
    np.testing.assert_allclose(raster.depth[raster.mask], 4.0, atol=1e-5)
    assert (raster.depth[~raster.mask] == 0).all() and (raster.face[~raster.mask] == -1).all()
    # Documented convention: p = (1 - b1 - b2) v0 + b1 v1 + b2 v2, so b1 = x / 0.8, b2 = y / 0.8.
    np.testing.assert_allclose(raster.bary[raster.mask][:, 0], hits[raster.mask][:, 0] / 0.8, atol=1e-4)
    np.testing.assert_allclose(raster.bary[raster.mask][:, 1], hits[raster.mask][:, 1] / 0.8, atol=1e-4)
    # The normal follows the right-hand rule of the vertex order, (v1 - v0) x (v2 - v0) = +z here,
    # away from the camera: it is not flipped towards the viewer.
    np.testing.assert_allclose(
        raster.normal[raster.mask], np.tile([0, 0, 1.0], (raster.mask.sum(), 1)), atol=1e-6
    )


def test_cube_interpolation_reprojects_to_pixel_centres() -> None:
    cam = Camera.look_at((2.0, -3.0, 2.5), (0, 0, 0), (0, 0, 1), 96, 80, 45.0)
    vertices, faces = _cube(1.0, (0.0, 0.0, 0.0))
    raster = Rasterizer(faces, len(vertices), device="cpu").render(torch.as_tensor(vertices), cam)
    # Three faces of the cube are visible from this corner view.
    assert len(np.unique(raster.face[raster.mask] // 2)) == 3
    points = interpolate(raster, vertices, faces)
    assert points.shape == (80, 96, 3) and (points[~raster.mask] == 0).all()
    rows, cols = np.nonzero(raster.mask)
    uv = cam.project(points[raster.mask].astype(np.float64))
    np.testing.assert_allclose(uv, np.stack([cols + 0.5, rows + 0.5], 1), atol=1e-3)
    np.testing.assert_allclose(cam.to_camera(points[raster.mask])[:, 2], raster.depth[raster.mask], rtol=1e-5)
    # Hit points lie on the cube's surface, and normals are outward (facing the camera).
    assert np.abs(np.abs(points[raster.mask]).max(axis=1) - 0.5).max() < 1e-5
    _, dirs = cam.pixel_rays()
    assert ((raster.normal[raster.mask] * dirs[raster.mask]).sum(-1) < 0).all()
    np.testing.assert_allclose(np.linalg.norm(raster.normal[raster.mask], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(interpolate_hits(raster, vertices, faces), points[raster.mask])


def test_nearest_surface_wins_and_render_is_deterministic() -> None:
    cam = _front_camera()
    near, faces = _cube(0.6, (0.0, 0.0, 4.0))
    far, _ = _cube(1.5, (0.0, 0.0, 8.0))
    vertices = np.concatenate([near, far])
    both = np.concatenate([faces, faces + 8])
    rasterizer = Rasterizer(both, 16, device="cpu")
    raster = rasterizer.render(vertices, cam)
    centre = raster.face[24, 32]
    assert centre < 12  # the near cube
    assert raster.depth[24, 32] == pytest.approx(3.7, abs=1e-5)
    assert (raster.face[raster.mask] >= 12).any()  # the far cube shows around it
    again = rasterizer.render(vertices, cam)
    for name in ("face", "bary", "depth", "normal"):
        np.testing.assert_array_equal(getattr(raster, name), getattr(again, name))


def test_refit_follows_new_pose_and_batch() -> None:
    cam = _front_camera()
    vertices, faces = _cube(0.5, (0.0, 0.0, 4.0))
    rasterizer = Rasterizer(faces, 8, device="cpu")
    first = rasterizer.render(vertices, cam)
    moved = rasterizer.render(vertices + np.array([0.0, 0.0, 2.0]), cam)
    assert moved.mask.sum() < first.mask.sum()  # farther away, smaller
    np.testing.assert_allclose(moved.depth[24, 32], 5.75, atol=1e-5)
    batch = rasterizer.render_batch(np.stack([vertices, vertices + np.array([0.0, 0.0, 2.0])]), cam)
    assert batch.face.shape == (2, 48, 64) and batch.mask.shape == (2, 48, 64)
    np.testing.assert_array_equal(batch.face[0], first.face)
    np.testing.assert_array_equal(batch.depth[1], moved.depth)
    values = interpolate(batch, vertices[:, :1], faces)
    assert values.shape == (2, 48, 64, 1)


def test_cast_and_empty_views() -> None:
    cam = _front_camera()
    vertices, faces = _cube(1.0, (0.0, 0.0, 5.0))
    rasterizer = Rasterizer(faces, 8, device="cpu")
    distance, face = rasterizer.cast(
        np.zeros(3), np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]), vertices=vertices
    )
    assert distance[0] == pytest.approx(4.5, abs=1e-5) and face[0] in (8, 9)
    assert np.isinf(distance[1]) and face[1] == -1
    # A mesh entirely outside the view gives an empty raster.
    empty = rasterizer.render(vertices + np.array([50.0, 0.0, 0.0]), cam)
    assert not empty.mask.any() and (empty.normal == 0).all()


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Rasterizer(np.array([[0, 1, 5]]), 3, device="cpu")
    with pytest.raises(ValueError):
        Rasterizer(np.zeros((2, 4), int), 4, device="cpu")
    rasterizer = Rasterizer(np.array([[0, 1, 2]]), 3, device="cpu")
    with pytest.raises(ValueError):
        rasterizer.render(np.zeros((4, 3)), _front_camera())
    with pytest.raises(ValueError):
        rasterizer.render(np.full((3, 3), np.nan), _front_camera())
