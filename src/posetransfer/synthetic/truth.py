"""Ground truth derived from the synthetic subject's cache: the true optical flow, and crops.

The renderer stores, per frame and pixel, which body face the pixel centre's ray hits and where
on it (barycentrics), plus the posed vertices. The same barycentric point on the same face is
the same surface point in every frame, so its projection in the next frame gives the exact
flow of every body pixel; the room is static under a fixed camera, so background flow is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from posetransfer import cache
from posetransfer.raster import Camera

# A point counts as hidden in the next frame when the surface seen at its pixel there lies this
# much nearer the camera (metres). A pixel is ~7 mm of body at the test resolution, and the
# nearest pixel centre is up to 0.7 px from the point, so 2 cm tolerates steep surfaces while
# an arm in front of the trunk (>= 5 cm nearer) still hides it.
DEPTH_TOLERANCE_M = 0.02


@dataclass(frozen=True)
class TruthPair:
    """What the true flow from frame ``i`` to ``i + 1`` needs (arrays in source-video pixels)."""

    face: np.ndarray  # (H, W) int32 face hit in frame i, -1 on background
    bary: np.ndarray  # (H, W, 2) barycentrics (b1, b2) in frame i, raster.Raster's convention
    next_face: np.ndarray  # (H, W) int32 face hit in frame i + 1
    next_bary: np.ndarray  # (H, W, 2) barycentrics in frame i + 1
    vertices: np.ndarray  # (V, 3) world vertices of frame i
    next_vertices: np.ndarray  # (V, 3) world vertices of frame i + 1
    faces: np.ndarray  # (F, 3) vertex indices
    camera: Camera

    def __post_init__(self) -> None:
        size = self.face.shape
        if self.next_face.shape != size:
            raise ValueError(f"next_face has shape {self.next_face.shape}, expected {size}")
        for name in ("bary", "next_bary"):
            if getattr(self, name).shape != (*size, 2):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {(*size, 2)}")
        if self.vertices.shape != self.next_vertices.shape or self.vertices.shape[-1:] != (3,):
            raise ValueError(f"vertices {self.vertices.shape} and {self.next_vertices.shape} must be (V, 3)")
        if size != (self.camera.height, self.camera.width):
            raise ValueError(
                f"image {size} differs from the camera's {self.camera.height}x{self.camera.width}"
            )


def camera_from_attrs(attrs: dict) -> Camera:
    """The synthetic camera from a truth cache's attributes (``x_cam = R x_world + t``)."""
    k = np.asarray(attrs["camera_K"], dtype=np.float64)
    return Camera(
        width=int(attrs["width"]),
        height=int(attrs["height"]),
        fx=float(k[0, 0]),
        fy=float(k[1, 1]),
        cx=float(k[0, 2]),
        cy=float(k[1, 2]),
        rotation=np.asarray(attrs["camera_R"]),
        translation=np.asarray(attrs["camera_t"]),
    )


def load_pair(truth: str | Path | cache.Cache, index: int) -> TruthPair:
    """Read frames ``index`` and ``index + 1`` of a synthetic truth cache."""
    if isinstance(truth, cache.Cache):
        return _pair_from(truth, index)
    with cache.open_cache(truth, "synthetic_truth") as opened:
        return _pair_from(opened, index)


def _pair_from(opened: cache.Cache, index: int) -> TruthPair:
    count = len(opened.dataset("face"))
    if not 0 <= index < count - 1:
        raise IndexError(f"pair {index} out of range [0, {count - 1}) in {opened.path}")
    both = slice(index, index + 2)
    face, bary, vertices = opened.read("face", both), opened.read("bary", both), opened.read("vertices", both)
    return TruthPair(
        face=face[0],
        bary=bary[0],
        next_face=face[1],
        next_bary=bary[1],
        vertices=vertices[0],
        next_vertices=vertices[1],
        faces=opened.read("faces"),
        camera=camera_from_attrs(opened.attrs),
    )


def _surface_points(
    face: np.ndarray, bary: np.ndarray, vertices: np.ndarray, faces: np.ndarray
) -> np.ndarray:
    """World points (N, 3) at barycentrics (N, 2) of faces (N,), raster's convention."""
    tri = vertices[faces[face]].astype(np.float64)  # (N, 3 vertices, 3)
    b = bary.astype(np.float64)
    weights = np.stack([1.0 - b[:, 0] - b[:, 1], b[:, 0], b[:, 1]], axis=1)
    return (weights[:, :, None] * tri).sum(axis=1)


def true_flow(truth: str | Path | cache.Cache | TruthPair, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True forward flow (H, W, 2) float32 from frame ``index`` to ``index + 1`` and where it holds.

    Flow is in source-video pixels, ``flow[y, x] = (dx, dy)``. For a body pixel of frame i, the
    surface point its centre sees (face f, barycentrics b) is moved to frame i + 1's vertices and
    projected; the flow is that projection minus the pixel centre ``(x + 0.5, y + 0.5)``.

    ``valid`` is True where the flow is both defined and observable in frame i + 1:

    * body pixels whose point lands inside frame i + 1 on a pixel that sees the body at a depth
      no nearer than the point's own minus :data:`DEPTH_TOLERANCE_M` (a depth test, as in shadow
      mapping; the surface seen there is recomputed exactly from frame i + 1's face and
      barycentrics). Points that land on background pixels (the silhouette's rim, where the
      pixel centre's ray just misses the body) are invalid: the test cannot tell there.
    * background pixels that are background in frame i + 1 too: the room is static, flow 0.

    Pixels covered in one frame and not the other (occlusion, disocclusion) are invalid.
    """
    pair = truth if isinstance(truth, TruthPair) else load_pair(truth, index)
    height, width = pair.face.shape
    flow = np.zeros((height, width, 2), np.float32)
    valid = (pair.face < 0) & (pair.next_face < 0)
    body = pair.face >= 0
    if not body.any():
        return flow, valid
    rows, cols = np.nonzero(body)
    points = _surface_points(pair.face[body], pair.bary[body], pair.next_vertices, pair.faces)
    target = pair.camera.project(points)
    flow[rows, cols] = (target - np.stack([cols + 0.5, rows + 0.5], axis=1)).astype(np.float32)
    valid[rows, cols] = _visible(points, target, pair)
    return flow, valid


def _visible(points: np.ndarray, target: np.ndarray, pair: TruthPair) -> np.ndarray:
    """Whether each world point (N, 3) projecting to ``target`` (N, 2) is seen in frame i + 1."""
    height, width = pair.next_face.shape
    finite = np.isfinite(target).all(axis=1)
    col = np.floor(np.where(finite, target[:, 0], -1.0)).astype(np.int64)
    row = np.floor(np.where(finite, target[:, 1], -1.0)).astype(np.int64)
    visible = finite & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    seen_face = np.full(len(points), -1, np.int64)
    seen_face[visible] = pair.next_face[row[visible], col[visible]]
    visible &= seen_face >= 0
    if visible.any():
        seen = _surface_points(
            seen_face[visible], pair.next_bary[row[visible], col[visible]], pair.next_vertices, pair.faces
        )
        seen_depth = pair.camera.to_camera(seen)[:, 2]
        point_depth = pair.camera.to_camera(points[visible])[:, 2]
        visible[visible] = seen_depth >= point_depth - DEPTH_TOLERANCE_M
    return visible


def _pad_crop(image: np.ndarray, crop_box: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """The square ``crop_box`` = (x0, y0, side) of ``image``, zero outside the image."""
    x0, y0, side = (int(v) for v in crop_box)
    height, width = image.shape[:2]
    out = np.zeros((side, side, *image.shape[2:]), image.dtype)
    src_r0, src_r1 = max(0, y0), min(height, y0 + side)
    src_c0, src_c1 = max(0, x0), min(width, x0 + side)
    if src_r0 < src_r1 and src_c0 < src_c1:
        out[src_r0 - y0 : src_r1 - y0, src_c0 - x0 : src_c1 - x0] = image[src_r0:src_r1, src_c0:src_c1]
    return out


def to_crop(array: np.ndarray, crop_box: np.ndarray | tuple[int, int, int], resolution: int) -> np.ndarray:
    """A source-pixel float array (H, W) or (H, W, C) cut to ``crop_box`` and resized like frames.

    Area averaging when shrinking (as the frames stage resizes), bilinear when enlarging; zero
    outside the source image. Values are not rescaled: use :func:`flow_to_crop` for flow.
    """
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) array, got {array.shape}")
    square = _pad_crop(np.asarray(array, dtype=np.float32), crop_box)
    side = square.shape[0]
    interpolation = cv2.INTER_AREA if side > resolution else cv2.INTER_LINEAR
    return cv2.resize(square, (resolution, resolution), interpolation=interpolation)


def mask_to_crop(
    mask: np.ndarray, crop_box: np.ndarray | tuple[int, int, int], resolution: int, strict: bool = True
) -> np.ndarray:
    """A source-pixel bool mask in crop coordinates.

    ``strict``: a crop pixel is True only where every source pixel under it is (for validity
    masks, so no crop pixel mixes valid and invalid flow); else where at least half are.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got {mask.shape}")
    fraction = to_crop(mask.astype(np.float32), crop_box, resolution)
    return fraction >= 0.999 if strict else fraction >= 0.5


def flow_to_crop(
    flow: np.ndarray, valid: np.ndarray, crop_box: np.ndarray | tuple[int, int, int], resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """Source-pixel flow and validity in crop pixels: resampled, and lengths times resolution/side."""
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != valid.shape:
        raise ValueError(f"expected (H, W, 2) flow and (H, W) valid, got {flow.shape} and {valid.shape}")
    side = int(crop_box[2])
    cropped = to_crop(np.where(valid[..., None], flow, 0.0), crop_box, resolution) * (resolution / side)
    return cropped.astype(np.float32), mask_to_crop(valid, crop_box, resolution, strict=True)
