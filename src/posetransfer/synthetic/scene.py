"""The synthetic scene: one seeded subject moving in a static room, seen by a fixed camera.

Each frame is rendered by one Warp ray-cast launch over the body plus vectorised numpy shading,
composited over a room image rendered once. Everything derives from ``SceneSpec.seed`` through
independent random streams, and the same (spec, index) gives bit-identical frames on CPU in any
call order (the BVH is built from the fixed rest stance).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetransfer.keypoints import coco23_to_body25
from posetransfer.raster import Camera, Rasterizer, interpolate_hits
from posetransfer.synthetic.appearance import (
    BodyTexture,
    Outfit,
    RoomStyle,
    lambert,
    render_room,
    vertex_normals,
)
from posetransfer.synthetic.body import SEGMENTS, AnnyBody, Phenotype
from posetransfer.synthetic.motion import Motion, MotionParams

__all__ = ["SceneSpec", "SyntheticFrame", "SyntheticScene"]

FOV_Y_DEG = 50.0
PERSON_FRACTION = 0.62  # standing height / frame height, where the frame is tall enough
HALF_SPAN = 1.15  # metres either side of the subject's axis that must stay in view
VISIBILITY_SLACK = 0.02  # metres a keypoint may lie behind the first surface beyond its own depth
OWN_SEGMENT_REACH = 0.15  # metres a keypoint may lie behind a surface of its own segments (hand, foot)

# BODY_25 keypoints' own segments (body.SEGMENTS): surfaces that only self-occlude them. The face's
# keypoints have none: they lie on the skin, and the head hiding them (far eye in profile) hides them.
_OWN_SEGMENTS: tuple[tuple[str, ...], ...] = (
    (), ("torso", "head"), ("torso", "arm.R"), ("arm.R",), ("arm.R",), ("torso", "arm.L"), ("arm.L",),
    ("arm.L",), ("torso",), ("torso", "leg.R"), ("leg.R",), ("leg.R",), ("torso", "leg.L"), ("leg.L",),
    ("leg.L",), (), (), (), (), ("leg.L",), ("leg.L",), ("leg.L",), ("leg.R",),
    ("leg.R",), ("leg.R",),
)  # fmt: skip
_NECK, _MID_HIP, _SHOULDERS, _HIPS = 1, 8, (2, 5), (9, 12)


@dataclass
class SceneSpec:
    """What to render: image size, length, frame rate and the seed of everything random."""

    width: int = 640
    height: int = 480
    num_frames: int = 96
    fps: float = 24.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"image must be at least 16x16, got {self.width}x{self.height}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


@dataclass
class SyntheticFrame:
    """One rendered frame and its exact ground truth."""

    rgb: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool, pixels whose ray hit the body (== face >= 0)
    face: np.ndarray  # (H, W) int32 body face index, -1 elsewhere
    bary: np.ndarray  # (H, W, 2) float32, raster.Raster's convention
    keypoints: np.ndarray  # (25, 3) float32 BODY_25 x, y (pixel centres at +0.5), visibility 0/1
    vertices: np.ndarray  # (V, 3) float32 world (Z up, metres, floor at z = 0)


def _auto_device() -> str:
    """CUDA when both torch and Warp see it, else CPU."""
    import torch
    import warp as wp

    return "cuda" if torch.cuda.is_available() and wp.is_cuda_available() else "cpu"


class SyntheticScene:
    """A seeded synthetic video: ``scene.frame(i)`` for ``i`` in ``range(len(scene))``."""

    def __init__(self, spec: SceneSpec, cache_dir: Path, device: str | None = None) -> None:
        self.spec = spec
        self.device = device or _auto_device()
        rng_body, rng_outfit, rng_room, rng_motion = (
            np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(4)
        )
        self.phenotype = Phenotype.sample(rng_body)
        self.outfit = Outfit.sample(rng_outfit)
        self.room = RoomStyle.sample(rng_room)
        self.body = AnnyBody(Path(cache_dir), self.phenotype, device=self.device)
        self.motion = Motion(MotionParams.sample(rng_motion), self.body.bone_labels)
        self.faces = self.body.faces  # (F, 3) int32
        self.uv = self.body.uv  # (T, 2) float32 Anny texture coordinates
        self.face_uv = self.body.face_uv  # (F, 3) int32 indices into uv

        # Ground the rest stance once: its lowest vertex touches the floor. Later frames keep the
        # lower ankle at its stance height (a planted foot), which is what lets the squat go down.
        stance = self.body.pose(self.motion.stance()[None])
        self._feet = [self.body.bone_index["foot.L"], self.body.bone_index["foot.R"]]
        self._ground = -float(stance.vertices[0, :, 2].min())
        self._ankle_z = float(stance.bone_heads[0, self._feet, 2].min())
        stance_vertices = stance.vertices[0] + (0.0, 0.0, self._ground)
        self.body_height = float(stance_vertices[:, 2].max())

        self.camera = self._fit_camera(self.body_height)
        self.rasterizer = Rasterizer(
            self.faces, self.body.num_vertices, device=self.device, reference_vertices=stance_vertices
        )
        self.background = render_room(self.camera, self.room)
        light = np.asarray(self.room.light) - (0.0, 0.0, 1.0)
        self.light_dir = (light / np.linalg.norm(light)).astype(np.float32)
        groups = self.body.group_weights
        idx = self.body.bone_index
        self.texture = BodyTexture(
            self.body.rest_vertices, self.body.rest_keypoints,
            eye_centres=self.body.rest_bone_heads[[idx["eye.L"], idx["eye.R"]]],
            shoulders=self.body.rest_bone_heads[[idx["upperarm01.L"], idx["upperarm01.R"]]],
            groups=groups, outfit=self.outfit,
        )  # fmt: skip
        # How deep each keypoint sits under the skin: its distance to the nearest stance vertex.
        stance_kp = coco23_to_body25(stance.keypoints[0] + (0.0, 0.0, self._ground))
        depth = np.sqrt(((stance_kp[:, None, :] - stance_vertices[None]) ** 2).sum(-1)).min(axis=1)
        self._visibility_tolerance = 1.5 * depth + VISIBILITY_SLACK
        self._own_segment = np.array([[s in own for s in SEGMENTS] for own in _OWN_SEGMENTS])  # (25, S)

    def _fit_camera(self, body_height: float) -> Camera:
        """A fixed camera in front of the subject (at -Y), framing the full motion with margin."""
        tan_y = math.tan(math.radians(FOV_Y_DEG) / 2.0)
        tan_x = tan_y * self.spec.width / self.spec.height
        distance = max(body_height / PERSON_FRACTION / (2.0 * tan_y), HALF_SPAN / tan_x)
        eye = (0.0, -distance, 0.62 * body_height)
        target = (0.0, 0.0, 0.5 * body_height)
        return Camera.look_at(eye, target, (0.0, 0.0, 1.0), self.spec.width, self.spec.height, FOV_Y_DEG)

    def __len__(self) -> int:
        return self.spec.num_frames

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for index in range(len(self)):
            yield self.frame(index)

    def posed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """World vertices ``(V, 3)`` and BODY_25 3D keypoints ``(25, 3)`` (float64) of frame ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range [0, {len(self)})")
        posed = self.body.pose(self.motion.deltas(index / self.spec.fps)[None])
        lift = self._ankle_z - posed.bone_heads[0, self._feet, 2].min()
        offset = np.array([0.0, 0.0, self._ground + lift])
        return posed.vertices[0] + offset, coco23_to_body25(posed.keypoints[0] + offset)

    def frame(self, index: int) -> SyntheticFrame:
        """Render frame ``index``."""
        vertices, keypoints_3d = self.posed(index)
        raster = self.rasterizer.render(vertices, self.camera)
        mask = raster.mask
        rgb = self.background.copy()
        if mask.any():
            albedo = self.texture.albedo(interpolate_hits(raster, self.texture.fields, self.faces))
            normals = interpolate_hits(
                raster, vertex_normals(vertices, self.faces).astype(np.float32), self.faces
            )
            shaded = lambert(albedo, normals, self.light_dir)
            rgb[mask] = (np.clip(shaded, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return SyntheticFrame(
            rgb=rgb,
            mask=mask,
            face=raster.face,
            bary=raster.bary,
            keypoints=self._keypoints(keypoints_3d),
            vertices=vertices.astype(np.float32),
        )

    def _keypoints(self, points: np.ndarray) -> np.ndarray:
        """(25, 3) pixel x, y and visibility of 3D keypoints, against the pose rendered last.

        A keypoint is visible when it projects into the image and the ray from the camera to it
        meets no surface much before it: "much" is its own depth under the skin plus 2 cm, or
        15 cm for surfaces of its own limb or trunk (a wrist behind its own hand, a heel behind
        its foot). So a far arm hidden by the torso is invisible. Neck and MidHip, midpoints inside
        the trunk, are visible when either shoulder (hip) is, as OpenPose annotates them.
        """
        xy = self.camera.project(points)
        centre = self.camera.center
        to_point = points - centre
        gap = np.linalg.norm(to_point, axis=1)
        first_hit, face = self.rasterizer.cast(centre, to_point)
        gap -= first_hit  # how far behind the first surface the keypoint lies (-inf: nothing hit)
        own = np.zeros(len(points), bool)
        hit = face >= 0
        own[hit] = self._own_segment[np.nonzero(hit)[0], self.body.face_segment[face[hit]]]
        visible = (gap <= self._visibility_tolerance) | (own & (gap <= OWN_SEGMENT_REACH))
        visible[_NECK] = visible[list(_SHOULDERS)].any()
        visible[_MID_HIP] = visible[list(_HIPS)].any()
        w, h = self.camera.width, self.camera.height
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        visible &= inside & np.isfinite(xy).all(axis=1)
        return np.column_stack([xy, visible]).astype(np.float32)
