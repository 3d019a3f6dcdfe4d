"""The project's one rasteriser: pinhole cameras and BVH ray casting of triangle meshes with NVIDIA Warp.

Every pixel casts one ray through its centre; the first triangle hit gives the pixel's face index,
barycentric coordinates, camera depth and face normal. Later stages (IUV maps, 3D labels, optical
flow) reuse :class:`Rasterizer` and :func:`interpolate` so that every label agrees on which surface
point a pixel sees.

Pixel convention (used everywhere in this module and by every keypoint the package writes):
continuous pixel coordinates with the origin at the top-left *corner* of the image, x to the right,
y down, so that the centre of the pixel in row ``r`` and column ``c`` is at ``(c + 0.5, r + 0.5)``.
This is MediaPipe's convention (normalised landmark times image size); OpenPose and ``cv2`` drawing
put pixel centres on integers, so subtract 0.5 before drawing with ``cv2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import warp as wp

# Keep Warp's greeting and per-module load lines out of the logs (Warp >= 1.19 replaced
# ``config.quiet`` by ``config.log_level``); warnings still show.
wp.config.log_level = max(wp.config.log_level, wp.LOG_WARNING)

__all__ = ["Camera", "Raster", "Rasterizer", "default_device", "interpolate", "interpolate_hits"]


def default_device() -> str:
    """``"cuda"`` where Warp sees a CUDA device, else ``"cpu"``."""
    wp.init()
    return "cuda" if wp.is_cuda_available() else "cpu"


@dataclass(frozen=True)
class Camera:
    """Pinhole camera, OpenCV convention: camera x right, y down, z forward.

    ``x_cam = rotation @ x_world + translation``; pixel coordinates follow the module convention
    (pixel centres at integer + 0.5), so ``u = fx * x / z + cx`` and the image centre is
    ``cx = width / 2`` for a centred principal point.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    rotation: np.ndarray  # (3, 3) world -> camera
    translation: np.ndarray  # (3,)

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ValueError(
                f"rotation must be (3, 3) and translation (3,), got {rotation.shape}, {translation.shape}"
            )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        # Frozen dataclass: normalise the arrays' dtype once, through object.__setattr__.
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, ``-R^T t``."""
        return -self.rotation.T @ self.translation

    @property
    def intrinsics(self) -> np.ndarray:
        """The 3x3 matrix K (module pixel convention)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` to camera coordinates ``(..., 3)``."""
        points = np.asarray(points_world, dtype=np.float64)
        if points.shape[-1] != 3:
            raise ValueError(f"points must have shape (..., 3), got {points.shape}")
        return points @ self.rotation.T + self.translation

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` to pixel coordinates ``(..., 2)``, pixel centres at integer + 0.5.

        Points behind the camera get NaN.
        """
        cam = self.to_camera(points_world)
        z = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            z_safe = np.where(z > 0, z, np.nan)
            u = self.fx * cam[..., 0] / z_safe + self.cx
            v = self.fy * cam[..., 1] / z_safe + self.cy
        return np.stack([u, v], axis=-1)

    @staticmethod
    def look_at(
        eye: np.ndarray | tuple[float, float, float],
        target: np.ndarray | tuple[float, float, float],
        up: np.ndarray | tuple[float, float, float],
        width: int,
        height: int,
        fov_y_deg: float,
    ) -> Camera:
        """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image.

        Square pixels, principal point at the image centre, vertical field of view ``fov_y_deg``.
        """
        eye_v = np.asarray(eye, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye_v
        if not 0.0 < fov_y_deg < 180.0:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {fov_y_deg}")
        if np.linalg.norm(forward) == 0:
            raise ValueError("eye and target coincide")
        z_axis = forward / np.linalg.norm(forward)
        x_axis = np.cross(z_axis, np.asarray(up, dtype=np.float64))  # image y points down, i.e. -up
        if np.linalg.norm(x_axis) < 1e-9:
            raise ValueError("up is parallel to the viewing direction")
        x_axis /= np.linalg.norm(x_axis)
        y_axis = np.cross(z_axis, x_axis)
        rotation = np.stack([x_axis, y_axis, z_axis])
        focal = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
        return Camera(
            width=width,
            height=height,
            fx=focal,
            fy=focal,
            cx=width / 2.0,
            cy=height / 2.0,
            rotation=rotation,
            translation=-rotation @ eye_v,
        )

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ray origin ``(3,)`` and world directions ``(H, W, 3)`` through every pixel centre.

        The directions are scaled so that their camera z is 1: ``origin + d * dir`` lies at depth d.
        """
        cols = (np.arange(self.width) + 0.5 - self.cx) / self.fx
        rows = (np.arange(self.height) + 0.5 - self.cy) / self.fy
        dirs_cam = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None], 1.0), axis=-1)
        return self.center, dirs_cam @ self.rotation


@dataclass
class Raster:
    """Per-pixel result of ray casting a mesh; arrays may carry a leading batch dimension.

    For a hit pixel with ``f = face[y, x]`` and the face's vertices ``v0, v1, v2 = V[faces[f]]``
    (in the order of the ``faces`` array), the surface point the pixel centre's ray hits is
    ``p = (1 - b1 - b2) * v0 + b1 * v1 + b2 * v2`` with ``(b1, b2) = bary[y, x]``.
    """

    face: np.ndarray  # (H, W) int32, -1 on background
    bary: np.ndarray  # (H, W, 2) float32 (b1, b2), 0 on background
    depth: np.ndarray  # (H, W) float32 camera z of the hit, 0 on background
    normal: np.ndarray  # (H, W, 3) float32 world unit normal of the hit face (counter-clockwise winding)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels whose ray hit the mesh."""
        return self.face >= 0


def interpolate_hits(raster: Raster, vertex_attr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of ``vertex_attr`` ``(V, C)`` at the hit pixels only: ``(N, C)``.

    Rows follow ``raster.mask``'s row-major order (``raster.face[raster.mask]``). Cheaper than
    :func:`interpolate` when most of the image is background.
    """
    attr = np.asarray(vertex_attr)
    faces = np.asarray(faces)
    if attr.ndim != 2:
        raise ValueError(f"vertex_attr must be (V, C), got {attr.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {faces.shape}")
    if raster.bary.shape != (*raster.face.shape, 2):
        raise ValueError(f"raster face {raster.face.shape} and bary {raster.bary.shape} disagree")
    dtype = attr.dtype if np.issubdtype(attr.dtype, np.floating) else np.float32
    hit = raster.face >= 0
    tri = faces[raster.face[hit]]  # (N, 3) vertex indices
    b = raster.bary[hit].astype(dtype)
    w0 = (1 - b[:, 0] - b[:, 1])[:, None]
    return w0 * attr[tri[:, 0]] + b[:, :1] * attr[tri[:, 1]] + b[:, 1:] * attr[tri[:, 2]]


def interpolate(raster: Raster, vertex_attr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of a per-vertex attribute ``(V, C)`` at every pixel: ``(..., H, W, C)``.

    Background pixels get 0. The result has ``vertex_attr``'s float dtype (float32 for integer input).
    """
    values = interpolate_hits(raster, vertex_attr, faces)
    out = np.zeros((*raster.face.shape, values.shape[1]), dtype=values.dtype)
    out[raster.face >= 0] = values
    return out


@wp.kernel
def _raycast_pixels(
    mesh: wp.uint64,
    origin: wp.vec3,
    cam_to_world: wp.mat33,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    row0: int,
    col0: int,
    face: wp.array2d(dtype=wp.int32),
    bary: wp.array2d(dtype=wp.vec2),
    depth: wp.array2d(dtype=wp.float32),
    normal: wp.array2d(dtype=wp.vec3),
):
    row, col = wp.tid()
    # Camera-space direction with z = 1, so the hit's t is its camera depth. The launch covers a
    # window of the image whose top-left pixel is (row0, col0).
    d_cam = wp.vec3((float(col + col0) + 0.5 - cx) / fx, (float(row + row0) + 0.5 - cy) / fy, 1.0)
    hit = wp.mesh_query_ray(mesh, origin, cam_to_world * d_cam, 1.0e6)
    if hit.result:
        face[row, col] = hit.face
        # Warp's hit is u * p0 + v * p1 + (1 - u - v) * p2; store the weights of p1 and p2.
        bary[row, col] = wp.vec2(hit.v, 1.0 - hit.u - hit.v)
        depth[row, col] = hit.t
        normal[row, col] = wp.normalize(hit.normal)
    else:
        face[row, col] = -1
        bary[row, col] = wp.vec2(0.0, 0.0)
        depth[row, col] = 0.0
        normal[row, col] = wp.vec3(0.0, 0.0, 0.0)


@wp.kernel
def _raycast_points(
    mesh: wp.uint64,
    origins: wp.array(dtype=wp.vec3),
    directions: wp.array(dtype=wp.vec3),
    distance: wp.array(dtype=wp.float32),
    face: wp.array(dtype=wp.int32),
):
    i = wp.tid()
    hit = wp.mesh_query_ray(mesh, origins[i], wp.normalize(directions[i]), 1.0e6)
    if hit.result:
        distance[i] = hit.t
        face[i] = hit.face
    else:
        distance[i] = wp.inf
        face[i] = -1


def _as_points(vertices: np.ndarray | torch.Tensor, num_vertices: int) -> np.ndarray:
    """``(V, 3)`` float32 contiguous numpy copy of ``vertices``, checking the shape."""
    if isinstance(vertices, torch.Tensor):
        vertices = vertices.detach().to("cpu", torch.float32).numpy()
    points = np.ascontiguousarray(vertices, dtype=np.float32)
    if points.shape != (num_vertices, 3):
        raise ValueError(f"vertices must have shape ({num_vertices}, 3), got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("vertices contain NaN or infinite values")
    return points


def _screen_window(points: np.ndarray, camera: Camera) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Pixel rows and columns ``((r0, r1), (c0, c1))`` (end-exclusive) whose centres can see the mesh.

    The projection of a triangle in front of the camera lies in the 2D box of its projected vertices,
    so rays outside the vertices' box cannot hit and are not cast (most of a frame is background).
    Returns the whole image when a vertex is behind the camera, None when the box misses the image.
    """
    depth = camera.to_camera(points)[:, 2]
    if (depth <= 0).any():
        return (0, camera.height), (0, camera.width)
    uv = camera.project(points)
    # Pixel c's centre is c + 0.5; one pixel of slack absorbs float32 rounding in the kernel.
    c0, r0 = np.floor(uv.min(axis=0) - 0.5).astype(int) - 1
    c1, r1 = np.ceil(uv.max(axis=0) - 0.5).astype(int) + 2
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, camera.height), min(c1, camera.width)
    if r0 >= r1 or c0 >= c1:
        return None
    return (int(r0), int(r1)), (int(c0), int(c1))


class Rasterizer:
    """Ray-casting rasteriser of one triangle mesh topology, posed anew for each call.

    The BVH is built once, from ``reference_vertices`` if given, else from the first pose rendered,
    and refitted for every later pose. Build it from a fixed reference pose when outputs must not
    depend on call order: rays that graze a shared edge resolve ties by BVH traversal order.
    """

    def __init__(
        self,
        faces: np.ndarray | torch.Tensor,
        num_vertices: int,
        device: str | None = None,
        reference_vertices: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        if isinstance(faces, torch.Tensor):
            faces = faces.detach().cpu().numpy()
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise ValueError(f"faces must be a non-empty (F, 3) array, got {faces.shape}")
        if not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces must be integers, got {faces.dtype}")
        if faces.min() < 0 or faces.max() >= num_vertices:
            raise ValueError(
                f"face indices must lie in [0, {num_vertices}), got [{faces.min()}, {faces.max()}]"
            )
        self.faces = faces.astype(np.int32)
        self.num_vertices = int(num_vertices)
        self.device = device or default_device()
        self._indices = wp.array(self.faces.reshape(-1), dtype=wp.int32, device=self.device)
        self._mesh: wp.Mesh | None = None
        if reference_vertices is not None:
            self._set_pose(reference_vertices)

    def _set_pose(self, vertices: np.ndarray | torch.Tensor) -> wp.Mesh:
        """Move the mesh to ``vertices``: build the BVH the first time, refit it afterwards."""
        points = _as_points(vertices, self.num_vertices)
        if self._mesh is None:
            self._mesh = wp.Mesh(
                points=wp.array(points, dtype=wp.vec3, device=self.device), indices=self._indices
            )
        else:
            self._mesh.points.assign(points)
            self._mesh.refit()
        return self._mesh

    def render(self, vertices: np.ndarray | torch.Tensor, camera: Camera) -> Raster:
        """Ray-cast the mesh posed at ``vertices`` ``(V, 3)`` (world) through every pixel of ``camera``."""
        points = _as_points(vertices, self.num_vertices)
        mesh = self._set_pose(points)
        shape = (camera.height, camera.width)
        raster = Raster(
            face=np.full(shape, -1, dtype=np.int32),
            bary=np.zeros((*shape, 2), np.float32),
            depth=np.zeros(shape, np.float32),
            normal=np.zeros((*shape, 3), np.float32),
        )
        window = _screen_window(points, camera)
        if window is None:
            return raster
        (r0, r1), (c0, c1) = window
        size = (r1 - r0, c1 - c0)
        face = wp.empty(size, dtype=wp.int32, device=self.device)
        bary = wp.empty(size, dtype=wp.vec2, device=self.device)
        depth = wp.empty(size, dtype=wp.float32, device=self.device)
        normal = wp.empty(size, dtype=wp.vec3, device=self.device)
        wp.launch(
            _raycast_pixels,
            dim=size,
            inputs=[
                mesh.id,
                wp.vec3(*camera.center),
                wp.mat33(*camera.rotation.T.reshape(-1)),
                float(camera.fx),
                float(camera.fy),
                float(camera.cx),
                float(camera.cy),
                r0,
                c0,
            ],
            outputs=[face, bary, depth, normal],
            device=self.device,
        )
        raster.face[r0:r1, c0:c1] = face.numpy()
        raster.bary[r0:r1, c0:c1] = bary.numpy()
        raster.depth[r0:r1, c0:c1] = depth.numpy()
        raster.normal[r0:r1, c0:c1] = normal.numpy()
        return raster

    def render_batch(self, vertices: np.ndarray | torch.Tensor, camera: Camera) -> Raster:
        """Render each pose of ``vertices`` ``(B, V, 3)``; the Raster's arrays get a leading B."""
        if vertices.ndim != 3:
            raise ValueError(f"vertices must have shape (B, V, 3), got {tuple(vertices.shape)}")
        rasters = [self.render(v, camera) for v in vertices]
        return Raster(
            face=np.stack([r.face for r in rasters]),
            bary=np.stack([r.bary for r in rasters]),
            depth=np.stack([r.depth for r in rasters]),
            normal=np.stack([r.normal for r in rasters]),
        )

    def cast(
        self,
        origins: np.ndarray,
        directions: np.ndarray,
        vertices: np.ndarray | torch.Tensor | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """First hits of rays ``(N, 3)``: distance along the unit direction (inf where none) and face.

        Uses the pose of the last :meth:`render` unless ``vertices`` are given.
        """
        origins = np.ascontiguousarray(np.broadcast_to(origins, np.shape(directions)), dtype=np.float32)
        directions = np.ascontiguousarray(directions, dtype=np.float32)
        if directions.ndim != 2 or directions.shape[1] != 3:
            raise ValueError(f"directions must have shape (N, 3), got {directions.shape}")
        if vertices is not None:
            self._set_pose(vertices)
        if self._mesh is None:
            raise RuntimeError("no pose yet: call render() first or pass vertices")
        n = len(directions)
        distance = wp.empty(n, dtype=wp.float32, device=self.device)
        face = wp.empty(n, dtype=wp.int32, device=self.device)
        if n:
            wp.launch(
                _raycast_points,
                dim=n,
                inputs=[
                    self._mesh.id,
                    wp.array(origins, dtype=wp.vec3, device=self.device),
                    wp.array(directions, dtype=wp.vec3, device=self.device),
                ],
                outputs=[distance, face],
                device=self.device,
            )
        return np.array(distance.numpy()), np.array(face.numpy())
