"""The body fit's smplx backend: SMPL through the smplx package, with the user's model file.

Same unknowns and energy as the Anny fit (``posetransfer.body3d``): SMPL betas for the video
instead of Anny's phenotype, and per frame the global orientation, 23 joint rotations and the
translation in camera space.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from posetransfer.errors import ConfigError

if TYPE_CHECKING:
    from posetransfer.body3d import Body3dParams

# SMPL's frame (Y up, facing +Z) to camera axes (x right, y down, z forward): a half turn about X.
SMPL_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
# COCO-23 (posetransfer.keypoints.ANNY_COCO23_NAMES order) from smplx's SMPL joints: the 24
# skeleton joints, then its vertex joints 24-34 (nose, right eye, left eye, right ear, left ear,
# left big toe, left small toe, left heel, right big toe, right small toe, right heel).
SMPL_COCO23 = [24, 26, 25, 28, 27, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8, 29, 32, 30, 33, 31, 34]
SMPL_FILE = "SMPL_NEUTRAL.pkl"


def load_smpl(params: Body3dParams):
    """smplx's SMPL model from ``body3d.smplx_model_dir`` (a folder with SMPL_NEUTRAL.pkl, or the file)."""
    import pickle

    folder = params.smplx_model_dir
    if folder is None:
        raise ConfigError(
            f"body3d.smplx_model_dir: required by body3d.backend smplx (a folder with {SMPL_FILE})"
        )
    path = Path(folder).expanduser()
    if not path.exists():
        raise ConfigError(f"body3d.smplx_model_dir: SMPL model folder {folder} does not exist")
    model_file = path / SMPL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise ConfigError(
            f"body3d.smplx_model_dir: no {SMPL_FILE} here (SMPL's model files come from smpl.is.tue.mpg.de)",
            model_file,
        )
    try:
        import smplx
    except ImportError as exc:
        raise ConfigError("body3d.backend smplx needs the smplx package: pip install smplx==0.1.28") from exc
    try:
        model = smplx.SMPL(model_path=str(model_file), dtype=torch.float64)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        AttributeError,
        ValueError,
        ModuleNotFoundError,
    ) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"body3d.smplx_model_dir: cannot load this SMPL model ({type(exc).__name__}: {first}); files"
            " pickled with chumpy need chumpy installed or a chumpy-free copy",
            model_file,
        ) from exc
    return model.requires_grad_(False)


class SmplFit(torch.nn.Module):
    """The smplx backend's unknowns: SMPL betas for the video; per frame the global orientation,
    the 23 joint rotations (axis-angle) and the translation, in camera space."""

    def __init__(self, model, count: int, init_translation: np.ndarray) -> None:
        super().__init__()
        import roma

        self.model, self._roma = model, roma
        dtype = model.shapedirs.dtype
        root = roma.rotmat_to_rotvec(torch.as_tensor(SMPL_TO_CAMERA, dtype=dtype))
        self.phenotype = torch.nn.Parameter(torch.zeros(model.num_betas, dtype=dtype))  # betas
        self.root = torch.nn.Parameter(root.repeat(count, 1))
        self.translation = torch.nn.Parameter(torch.as_tensor(init_translation, dtype=dtype))
        self.rotations = torch.nn.Parameter(torch.zeros(count, 23, 3, dtype=dtype))

    def phenotype_values(self) -> torch.Tensor:
        return self.phenotype

    def shape_prior(self) -> torch.Tensor:
        """SMPL's betas are unit-Gaussian: their squared norm."""
        return (self.phenotype**2).sum()

    def faces(self) -> np.ndarray:
        return np.asarray(self.model.faces, dtype=np.int32)

    @property
    def num_vertices(self) -> int:
        return int(self.model.v_template.shape[0])

    def deltas(self) -> torch.Tensor:
        """(N, 24, 4, 4): the root's rotation and translation, then each joint's local rotation."""
        count, dtype = len(self.root), self.root.dtype
        delta = torch.eye(4, dtype=dtype, device=self.root.device).repeat(count, 24, 1, 1)
        delta[:, 0, :3, :3] = self._roma.rotvec_to_rotmat(self.root)
        delta[:, 0, :3, 3] = self.translation
        delta[:, 1:, :3, :3] = self._roma.rotvec_to_rotmat(self.rotations)
        return delta

    def shape_terms(self) -> None:
        return None  # SMPL is posed whole every step

    def joints(self, shape=None) -> torch.Tensor:
        return self.posed()["keypoints"]

    def posed(self, frames: slice = slice(None)) -> dict[str, torch.Tensor]:
        root = self.root[frames]
        count = len(root)
        output = self.model(
            betas=self.phenotype.expand(count, -1),
            global_orient=root,
            body_pose=self.rotations[frames].reshape(count, -1),
            transl=self.translation[frames],
        )
        return {"vertices": output.vertices, "keypoints": output.joints[:, SMPL_COCO23]}
