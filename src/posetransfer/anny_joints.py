"""Anny's COCO-23 keypoints without skinning the mesh: the body fit's forward pass.

The regressor's keypoints are fixed blends of skinned vertices, and linear blend skinning is
linear in the rest vertices, so each keypoint is ``sum_j T_j A_kj`` over bones ``j``, where ``T_j``
is the bone's skinning transform and ``A_kj = sum_v R_kv w_vj (rest_v, 1)`` blends the rest
vertices with regressor and skinning weights. Rest vertices are linear in the blendshape
coefficients, so ``A`` is too: its per-blendshape terms are computed once, at start.

The fit rotates only a few bones (``moving``: the root and the fitted bones); every other delta is
the identity. In Anny's ``local-ref`` parameterisation a bone with an identity delta moves
rigidly with its parent relative to the identity-delta pose, so with ``W^I`` the bone poses of
that pose, ``T_j = G_g(j) T^I_j``, where ``g(j)`` is the nearest moving ancestor-or-self and
``G_g = G_parent(g) W^I_g [U_g^T D_g U_g | 0] (W^I_g)^-1`` (``U``: reference orientations, ``D``:
the delta's rotation). Per frame this is a chain of 4x4 products over the moving bones only,
and ``keypoint_k = sum_g G_g B_kg`` with ``B_kg = sum_{j in g} T^I_j A_kj``. The result equals
Anny's forward pass followed by the regressor (tests/test_body3d.py checks it to 1e-9 m).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass
class ShapeTerms:
    """What one phenotype contributes: per moving bone, the blended rest terms and poses."""

    blended: torch.Tensor  # (K, G, 4) B_kg
    identity_poses: torch.Tensor  # (G, 4, 4) W^I of the moving bones
    orientations: torch.Tensor  # (G, 3, 3) reference orientations U of the moving bones


def rigid_inverse(pose: torch.Tensor) -> torch.Tensor:
    """The inverse of rigid 4x4 transforms (..., 4, 4): transpose the rotation."""
    rotation_t = pose[..., :3, :3].transpose(-1, -2)
    inverse = torch.zeros_like(pose)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ pose[..., :3, 3, None])[..., 0]
    inverse[..., 3, 3] = 1.0
    return inverse


def rest_bone_poses(model, coefficients: torch.Tensor) -> torch.Tensor:
    """Anny's rest bone poses (B, J, 4, 4) for blendshape coefficients (B, C).

    ``model.get_rest_model`` without the rest mesh, which the joints do not need (it costs more
    than everything else in a step of the fit): Anny's own steps for its "cached" orientations
    (the default) and "blender" bones; any other kind goes through ``get_rest_model``.
    """
    import roma
    from anny.skinning.skinning import apply_linear_blendshape
    from anny.utils.kinematics import get_bone_poses

    heads = apply_linear_blendshape(model.template_bone_heads, model.bone_heads_blendshapes, coefficients)
    if model.bone_orientation == "cached":
        # As Anny: cross-covariances linear in the coefficients, then the nearest rotations.
        covariance = model.bone_template_orientation_matrices[None] + torch.einsum(
            "ba,akij->bkij", coefficients, model.bone_orientation_blendshapes
        )
        orientation = roma.special_procrustes(covariance)
        if model.rest_orientation_refiner is not None:
            orientation = model.rest_orientation_refiner(orientation, heads)
        poses = roma.Rigid(linear=orientation, translation=heads).to_homogeneous()
    elif model.bone_orientation == "blender":
        tails = apply_linear_blendshape(model.template_bone_tails, model.bone_tails_blendshapes, coefficients)
        poses = get_bone_poses(
            heads,
            tails,
            model.bone_rolls_rotmat,
            y_axis=model.y_axis,
            degenerate_rotation=model.degenerate_rotation,
        )
    else:
        return model.get_rest_model(coefficients)["rest_bone_poses"]
    if model.root_identity_orientation:
        poses[:, 0, :3, :3] = torch.eye(3, device=poses.device, dtype=poses.dtype)
    return poses


class AnnyJoints(torch.nn.Module):
    """COCO-23 joints (N, K, 3) of Anny posed by root poses and the rotations of ``moving`` bones."""

    def __init__(self, model, regressor, moving_bones: Sequence[int]) -> None:
        super().__init__()
        if list(moving_bones[:1]) != [0] or len(set(moving_bones)) != len(moving_bones):
            raise ValueError(f"moving bones must start with the root (0), each once: {moving_bones}")
        if model.pose_parameterization != "local-ref":  # the derivation above is for local-ref
            raise ValueError(f"AnnyJoints needs Anny's local-ref poses, not {model.pose_parameterization}")
        parents = [int(p) for p in model.bone_parents]
        self.model = model
        self.moving = list(moving_bones)
        self.group = [self._nearest_moving(j, parents) for j in range(len(parents))]
        # Each moving bone's nearest moving ancestor, as a position in ``moving`` (root: -1), and
        # an order of the moving bones with parents first.
        self.chain = [-1] + [self.group[parents[j]] for j in self.moving[1:]]
        self.order = sorted(range(len(self.moving)), key=lambda index: self._depth(index))
        dtype, device = model.template_vertices.dtype, model.template_vertices.device
        membership = torch.zeros(len(parents), len(self.moving), dtype=dtype, device=device)
        membership[torch.arange(len(parents)), torch.tensor(self.group)] = 1.0
        self.register_buffer("membership", membership, persistent=False)
        base, per_blendshape = self._blend_terms(model, regressor.regression_weights)
        self.register_buffer("blend_base", base, persistent=False)  # (K, J, 4)
        self.register_buffer("blend_per_coefficient", per_blendshape, persistent=False)  # (C, K, J, 4)

    def _depth(self, index: int) -> int:
        return 0 if index == 0 else 1 + self._depth(self.chain[index])

    def _nearest_moving(self, bone: int, parents: list[int]) -> int:
        while bone not in self.moving:
            bone = parents[bone]
        return self.moving.index(bone)

    @staticmethod
    def _blend_terms(model, regression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``A_kj`` of the template (with the homogeneous 1) and of each blendshape's offsets."""
        used = torch.nonzero((regression != 0).any(dim=0)).flatten()  # vertices any keypoint reads
        weights = model.vertex_bone_weights[used]  # (S, M)
        bones = model.vertex_bone_indices[used].long()
        count, joints = regression.shape[0], len(model.bone_labels)
        keypoint = torch.arange(count, device=used.device)[:, None, None]
        rows = (keypoint * joints + bones[None]).flatten()  # row k * J + j of the (K J, S) product R w
        cols = torch.arange(len(used), device=used.device)[None, :, None].expand(count, -1, bones.shape[1])
        values = (regression[:, used, None] * weights[None]).flatten()
        keep = values != 0
        blend = torch.sparse_coo_tensor(
            torch.stack([rows[keep], cols.flatten()[keep]]),
            values[keep],
            (count * joints, len(used)),
            check_invariants=True,
        ).coalesce()
        template = model.template_vertices[used]
        homogeneous = torch.cat([template, torch.ones_like(template[:, :1])], dim=1)
        base = torch.sparse.mm(blend, homogeneous).reshape(count, joints, 4)
        offsets = model.blendshapes[:, used]  # (C, S, 3)
        stacked = offsets.permute(1, 0, 2).reshape(len(used), -1)  # (S, C * 3)
        per = torch.sparse.mm(blend, stacked).reshape(count, joints, len(offsets), 3)
        per = torch.cat([per, torch.zeros_like(per[..., :1])], dim=-1)  # offsets leave the 1 alone
        return base, per.permute(2, 0, 1, 3).contiguous()

    def shape_terms(self, phenotype: Mapping[str, torch.Tensor]) -> ShapeTerms:
        """The terms of one phenotype (values (1,) each in [0, 1]), differentiable in them."""
        model = self.model
        joints = len(model.bone_labels)
        identity = torch.eye(4, dtype=self.blend_base.dtype, device=self.blend_base.device)
        identity = identity.expand(1, joints, 4, 4)
        # Anny.forward's first steps, kept separate so that the mesh is never skinned.
        pose, values, local, face = model.get_tensor_inputs(identity, dict(phenotype), None, None)
        coefficients = model._get_phenotype_blendshape_coefficients(values, local, face)[0]
        rest_poses = rest_bone_poses(model, coefficients[None])
        transforms, poses = model.get_bone_transforms(pose, rest_poses)
        blend = self.blend_base + torch.einsum("c,ckjd->kjd", coefficients, self.blend_per_coefficient)
        skinned = torch.einsum("jab,kjb->kja", transforms[0], blend)  # T^I_j A_kj
        reference = model.reference_bone_orientations
        if reference is None:  # Anny then uses the rest orientations
            reference = rest_poses[0, :, :3, :3]
        return ShapeTerms(
            blended=torch.einsum("kja,jg->kga", skinned, self.membership),
            identity_poses=poses[0, self.moving],
            orientations=reference[self.moving],
        )

    def forward(
        self, shape: ShapeTerms, root: torch.Tensor, translation: torch.Tensor, rotations: torch.Tensor
    ) -> torch.Tensor:
        """Joints for root rotations (N, 3, 3), translations (N, 3), moving-bone rotations (N, G-1, 3, 3)."""
        count = len(root)
        U = shape.orientations
        local = torch.zeros(count, len(self.moving), 4, 4, dtype=root.dtype, device=root.device)
        local[:, 0, :3, :3] = U[0].T @ root @ U[0]  # the root's W_0 = [U_0^T D_0 U_0 | U_0^T d_0]
        local[:, 0, :3, 3] = translation @ U[0]
        local[:, 1:, :3, :3] = U[1:].transpose(-1, -2) @ rotations @ U[1:]
        local[:, :, 3, 3] = 1.0
        W = shape.identity_poses
        # E_g = W^I_g [U^T D U | 0] (W^I_g)^-1; the root's W^I is the identity.
        moves = torch.cat([local[:, :1], W[1:] @ local[:, 1:] @ rigid_inverse(W[1:])], dim=1)
        chained: list[torch.Tensor] = [moves[:, 0]] * len(self.moving)
        for index in self.order[1:]:
            chained[index] = chained[self.chain[index]] @ moves[:, index]
        G = torch.stack(chained, dim=1)  # (N, G, 4, 4)
        return torch.einsum("ngij,kgj->nki", G[..., :3, :], shape.blended)
