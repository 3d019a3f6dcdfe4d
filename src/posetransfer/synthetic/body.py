"""The Anny body model for the synthetic subject: phenotype, rest stance, posing, keypoints.

Anny's frame: Z up, metres, the subject faces -Y, ``.L`` bones are the subject's left (+X). With
identity pose deltas the root bone's head sits at the origin. Poses are per-bone 4x4 deltas in
Anny's default ``local-ref`` parameterisation: a rotation about the bone's head, in world-aligned
axes carried along by the parent; the root's delta is its world pose.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from posetransfer.keypoints import ANNY_COCO23_NAMES

__all__ = ["BONE_GROUPS", "SEGMENTS", "AnnyBody", "Phenotype", "PosedBody", "bone_segment"]

# Body parts as sets of bone-label prefixes; a vertex's membership of a part is the sum of its
# skinning weights on the part's bones, so membership varies smoothly across part boundaries.
BONE_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("neck", "head"),
    "eyes": ("eye.",),
    "torso": ("root", "spine", "clavicle", "shoulder01"),
    "pelvis": ("pelvis",),
    "upperarm": ("upperarm",),
    "forearm": ("lowerarm",),
    "hand": ("wrist", "finger", "metacarpal"),
    "thigh": ("upperleg",),
    "shin": ("lowerleg",),
    "foot": ("foot", "toe"),
}

# Coarse rigid-ish segments with sides, for occlusion reasoning (what blocks a keypoint's view).
SEGMENTS: tuple[str, ...] = ("head", "torso", "arm.L", "arm.R", "leg.L", "leg.R")


def bone_segment(label: str) -> str:
    """The SEGMENTS entry a bone belongs to."""
    side = label.rsplit(".", 1)[1] if "." in label else ""
    if label.startswith(("neck", "head", "eye.")):
        return "head"
    if label.startswith(("upperarm", "lowerarm", "wrist", "finger", "metacarpal")):
        return f"arm.{side}"
    if label.startswith(("upperleg", "lowerleg", "foot", "toe")):
        return f"leg.{side}"
    return "torso"  # root, spine, pelvis, clavicle, shoulder01


@dataclass(frozen=True)
class Phenotype:
    """Anny phenotype parameters, each in [0, 1] (age 0.5 is about 25 years, 1 about 90)."""

    gender: float = 0.5
    age: float = 0.7
    muscle: float = 0.5
    weight: float = 0.5
    height: float = 0.5
    proportions: float = 0.5

    @staticmethod
    def sample(rng: np.random.Generator) -> Phenotype:
        """A random adult within ordinary ranges."""
        return Phenotype(
            gender=float(rng.uniform(0.0, 1.0)),
            age=float(rng.uniform(0.67, 0.8)),
            muscle=float(rng.uniform(0.35, 0.65)),
            weight=float(rng.uniform(0.35, 0.65)),
            height=float(rng.uniform(0.35, 0.7)),
            proportions=float(rng.uniform(0.4, 0.6)),
        )


@dataclass
class PosedBody:
    """Anny's output for a batch of poses (float64 numpy, root at the delta's translation)."""

    vertices: np.ndarray  # (B, V, 3)
    keypoints: np.ndarray  # (B, 23, 3) COCO-23, order ANNY_COCO23_NAMES
    bone_heads: np.ndarray  # (B, J, 3) posed head of every bone


def _import_anny(cache_dir: Path):  # -> the anny module; typed loosely, it is imported lazily
    """Import anny with its model cache in ``cache_dir`` (the environment variable must come first)."""
    os.environ["ANNY_CACHE_DIR"] = str(Path(cache_dir).resolve())
    import anny
    import anny.paths

    # Also correct for an anny imported earlier with another cache directory.
    anny.paths.set_anny_cache_path(os.environ["ANNY_CACHE_DIR"])
    return anny


class AnnyBody:
    """One Anny subject of a fixed phenotype, posed on demand."""

    def __init__(self, cache_dir: Path, phenotype: Phenotype, device: str = "cpu") -> None:
        anny = _import_anny(cache_dir)
        self.device = torch.device(device)
        self.phenotype = phenotype
        with torch.no_grad():
            self.model = anny.Anny().to(self.device)
            self.regressor = anny.KeypointsRegressor.coco(self.model).to(self.device)
        if tuple(self.regressor.labels) != ANNY_COCO23_NAMES:
            raise RuntimeError(f"unexpected Anny COCO keypoint order: {self.regressor.labels}")
        faces = self.model.faces.detach().cpu().numpy()
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise RuntimeError(f"expected a triangle mesh, got faces of shape {faces.shape}")
        self.faces = faces.astype(np.int32)
        self.uv = self.model.texture_coordinates.detach().cpu().numpy().astype(np.float32)
        self.face_uv = self.model.face_texture_coordinate_indices.detach().cpu().numpy().astype(np.int32)
        self.bone_labels: list[str] = list(self.model.bone_labels)
        self.bone_index = {label: i for i, label in enumerate(self.bone_labels)}
        self.num_vertices = int(self.model.template_vertices.shape[0])
        rest = self.pose(np.broadcast_to(np.eye(4), (1, len(self.bone_labels), 4, 4)))
        self.rest_vertices = rest.vertices[0]  # (V, 3), identity pose (Anny's A-pose)
        self.rest_keypoints = rest.keypoints[0]
        self.rest_bone_heads = rest.bone_heads[0]
        per_bone = self._per_bone_weights()
        self.group_weights = {
            name: per_bone[:, [i for i, b in enumerate(self.bone_labels) if b.startswith(prefixes)]].sum(
                axis=1
            )
            for name, prefixes in BONE_GROUPS.items()
        }
        # Each face's segment: the one its three vertices are most skinned to.
        segment_of_bone = np.array([SEGMENTS.index(bone_segment(b)) for b in self.bone_labels])
        per_segment = np.zeros((self.num_vertices, len(SEGMENTS)))
        for k in range(len(SEGMENTS)):
            per_segment[:, k] = per_bone[:, segment_of_bone == k].sum(axis=1)
        self.face_segment = per_segment[self.faces].sum(axis=1).argmax(axis=1).astype(np.int32)

    def _per_bone_weights(self) -> np.ndarray:
        """(V, J) dense skinning weights."""
        weights = self.model.vertex_bone_weights.detach().cpu().numpy()
        indices = self.model.vertex_bone_indices.detach().cpu().numpy()
        per_bone = np.zeros((self.num_vertices, len(self.bone_labels)))
        np.add.at(per_bone, (np.arange(self.num_vertices)[:, None], indices), weights)
        return per_bone

    def pose(self, deltas: np.ndarray) -> PosedBody:
        """Pose the body with per-bone deltas ``(B, J, 4, 4)``."""
        deltas = np.array(deltas, dtype=np.float64)  # a writable copy, as torch wants
        if deltas.ndim != 4 or deltas.shape[1:] != (len(self.bone_labels), 4, 4):
            raise ValueError(f"deltas must be (B, {len(self.bone_labels)}, 4, 4), got {deltas.shape}")
        pose = torch.as_tensor(deltas, dtype=self.model.dtype, device=self.device)
        with torch.no_grad():
            out = self.model(pose_parameters=pose, phenotype_kwargs=asdict(self.phenotype))
            keypoints = self.regressor(out)
        return PosedBody(
            vertices=out["vertices"].cpu().numpy(),
            keypoints=keypoints.cpu().numpy(),
            bone_heads=out["bone_poses"][..., :3, 3].cpu().numpy(),
        )
