"""The body3d stage: one Anny body fitted to a whole video, SMPLify-style, batched over frames.

Unknowns: one phenotype (shape) for the video; per frame the root rotation and translation (the
body's pose in camera coordinates: the camera is fixed at the origin, OpenCV axes) and rotations of
the bones that 2D keypoints constrain. The camera is a pinhole with a fixed focal length,
``focal`` x the source video's longer side, mapped into the crop.

Energy (all terms in config, ``body3d.*``):
  reprojection  confidence-weighted Geman-McClure error of the BODY_25 keypoints (COCO-23 from
                Anny's keypoint regressor), in pixels at 256 px
  world         MediaPipe's 3D world landmarks (hip-centred, metres) against the model's joints,
                as a prior on depth and limb direction
  pose, shape   L2 on bone rotations and on the phenotype's distance from the average person
  smooth        squared first differences of rotations and translation over time

Frames without enough keypoints are carried by the smoothness term from their neighbours
(interpolated) when the gap is at most ``max_gap`` frames, and marked not fitted otherwise.

Each step evaluates only the joints (``posetransfer.anny_joints``: the same values as Anny's
mesh and regressor, without skinning the mesh); the mesh is posed once at the end, a chunk of
frames at a time, straight into the cache.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posetransfer import cache
from posetransfer.body3d_smpl import SmplFit, load_smpl
from posetransfer.errors import ConfigError
from posetransfer.input_warnings import picture_in_crop
from posetransfer.keypoints import BODY25_FROM_COCO23
from posetransfer.progress import format_ranges, progress

log = logging.getLogger(__name__)

PHENOTYPE_NAMES = ("gender", "age", "muscle", "weight", "height", "proportions")
# Bones whose rotation the fit estimates; every other bone keeps its rest orientation.
FITTED_BONES = (
    "spine04", "spine02", "neck01", "head",
    "upperleg01.L", "lowerleg01.L", "foot.L", "upperleg01.R", "lowerleg01.R", "foot.R",
    "clavicle.L", "upperarm01.L", "lowerarm01.L", "clavicle.R", "upperarm01.R", "lowerarm01.R",
)  # fmt: skip
# MediaPipe world landmark -> COCO-23 index: shoulders, elbows, wrists, hips, knees, ankles.
WORLD_TO_COCO23 = {11: 5, 12: 6, 13: 7, 14: 8, 15: 9, 16: 10, 23: 11, 24: 12, 25: 13, 26: 14, 27: 15, 28: 16}
# Anny's frame (Z up, facing -Y) to camera axes (x right, y down, z forward): facing the camera.
ANNY_TO_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
MIN_KEYPOINTS = 6  # a frame with fewer confident keypoints does not constrain the fit


@dataclass(frozen=True)
class Body3dParams:
    """The ``body3d`` section of the config."""

    backend: str = "anny"
    smplx_model_dir: str | None = None
    focal: float = 0.8
    min_confidence: float = 0.3
    root_iterations: int = 40
    iterations: int = 150
    learning_rate: float = 0.05
    robust_px: float = 20.0
    w_world: float = 100.0
    w_pose: float = 0.5
    w_shape: float = 1.0
    w_smooth: float = 20.0
    max_gap: int = 12
    threads: int = 1

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Body3dParams:
        return cls(**section)


@dataclass
class Targets:
    """What the fit sees, as tensors: 2D keypoints in COCO-23 order, their weights, world landmarks."""

    keypoints: torch.Tensor  # (N, 23, 2) pixels
    weights: torch.Tensor  # (N, 23) confidence, 0 where missing
    world: torch.Tensor  # (N, 12, 3) metres, hip-centred, camera-aligned axes
    world_weights: torch.Tensor  # (N, 12)
    focal: float
    center: tuple[float, float]
    scale: float  # 256 / resolution: pixel errors are measured at 256 px


def camera_intrinsics(frames_attrs: Mapping[str, Any], focal: float) -> np.ndarray:
    """K of the crop: focal = ``focal`` x the source's longer side, principal point at its centre."""
    x0, y0, side = (float(v) for v in frames_attrs["crop_box"])
    width, height = (float(v) for v in frames_attrs["source_size"])
    scale = float(frames_attrs["resolution"]) / side
    f = focal * max(width, height) * scale
    return np.array(
        [[f, 0.0, (width / 2 - x0) * scale], [0.0, f, (height / 2 - y0) * scale], [0.0, 0.0, 1.0]]
    )


def to_coco23(body25: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """BODY_25 (N, 25, 3) -> COCO-23 positions (N, 23, 2) and weights (N, 23)."""
    positions = np.zeros((len(body25), 23, 2), np.float64)
    weights = np.zeros((len(body25), 23), np.float64)
    for body, coco in BODY25_FROM_COCO23.items():
        positions[:, coco] = body25[:, body, :2]
        confidence = body25[:, body, 2]
        weights[:, coco] = np.where(confidence >= min_confidence, confidence, 0.0)
    return positions, weights


def usable_frames(weights: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(constrained, fitted): frames with enough keypoints, and those plus gaps of <= max_gap."""
    constrained = (weights > 0).sum(axis=1) >= MIN_KEYPOINTS
    fitted = constrained.copy()
    index = np.flatnonzero(constrained)
    for a, b in itertools.pairwise(index):
        if 1 < b - a <= max_gap + 1:
            fitted[a + 1 : b] = True
    return constrained, fitted


class AnnyFit(torch.nn.Module):
    """The unknowns of the fit and the differentiable forward pass to COCO-23 joints in camera space.

    ``joints`` come from :class:`~posetransfer.anny_joints.AnnyJoints` (no mesh skinning); with
    ``mesh_joints`` they are regressed from the whole skinned mesh every step instead (the same
    values, 10-100x slower: the reference path for benchmarks and tests).
    """

    def __init__(
        self,
        model,
        regressor,
        joints_model,
        count: int,
        init_translation: np.ndarray,
        mesh_joints: bool = False,
    ) -> None:
        super().__init__()
        import roma

        self.model, self.regressor, self.joints_model, self._roma = model, regressor, joints_model, roma
        self.mesh_joints = mesh_joints
        dtype, device = model.dtype, model.template_vertices.device
        self.bones = [list(model.bone_labels).index(name) for name in FITTED_BONES]
        root = roma.rotmat_to_rotvec(torch.as_tensor(ANNY_TO_CAMERA, dtype=dtype, device=device))
        self.phenotype = torch.nn.Parameter(torch.zeros(len(PHENOTYPE_NAMES), dtype=dtype, device=device))
        self.root = torch.nn.Parameter(root.repeat(count, 1))
        self.translation = torch.nn.Parameter(torch.as_tensor(init_translation, dtype=dtype, device=device))
        self.rotations = torch.nn.Parameter(
            torch.zeros(count, len(self.bones), 3, dtype=dtype, device=device)
        )

    def phenotype_values(self) -> torch.Tensor:
        return torch.sigmoid(self.phenotype)

    def phenotype_kwargs(self) -> dict[str, torch.Tensor]:
        """Anny's phenotype arguments, batch 1: one shape serves every frame."""
        values = self.phenotype_values()
        return {name: values[i : i + 1] for i, name in enumerate(PHENOTYPE_NAMES)}

    def shape_prior(self) -> torch.Tensor:
        """Squared distance of the phenotype from the average person (0.5 on every axis)."""
        return ((self.phenotype_values() - 0.5) ** 2).sum()

    def faces(self) -> np.ndarray:
        return self.model.faces.cpu().numpy().astype(np.int32)

    @property
    def num_vertices(self) -> int:
        return int(self.model.template_vertices.shape[0])

    def shape_terms(self):
        """What the current phenotype contributes to every frame's joints (None on the mesh path)."""
        return None if self.mesh_joints else self.joints_model.shape_terms(self.phenotype_kwargs())

    def joints(self, shape=None) -> torch.Tensor:
        """COCO-23 joints (N, 23, 3) in camera space; ``shape`` from :meth:`shape_terms`, if known."""
        if self.mesh_joints:
            return self.posed()["keypoints"]
        shape = self.shape_terms() if shape is None else shape
        rotations = self._roma.rotvec_to_rotmat(self.rotations)
        return self.joints_model(shape, self._roma.rotvec_to_rotmat(self.root), self.translation, rotations)

    def deltas(self, frames: slice = slice(None)) -> torch.Tensor:
        """(N, J, 4, 4) Anny pose parameters (local-ref): root pose in camera space, bone rotations."""
        root, dtype = self.root[frames], self.model.dtype
        joints = len(self.model.bone_labels)
        delta = torch.eye(4, dtype=dtype, device=root.device).repeat(len(root), joints, 1, 1)
        delta[:, 0, :3, :3] = self._roma.rotvec_to_rotmat(root)
        delta[:, 0, :3, 3] = self.translation[frames]
        delta[:, self.bones, :3, :3] = self._roma.rotvec_to_rotmat(self.rotations[frames])
        return delta

    def posed(self, frames: slice = slice(None)) -> dict[str, torch.Tensor]:
        """Anny's whole output (``vertices``, ``keypoints``, ...) for some frames."""
        return pose_body(self.model, self.regressor, self.phenotype_values(), self.deltas(frames))


def pose_body(model, regressor, phenotype: torch.Tensor, deltas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Anny posed by (N, J, 4, 4) ``deltas`` with one shape (phenotype values in [0, 1]).

    Returns Anny's output (``vertices`` (N, V, 3), ...) plus ``keypoints``: COCO-23 joints (N, 23, 3).
    The phenotype goes in with batch 1: Anny then builds the rest mesh once for all frames.
    """
    kwargs = {name: phenotype[i : i + 1] for i, name in enumerate(PHENOTYPE_NAMES)}
    output = model(pose_parameters=deltas, phenotype_kwargs=kwargs)
    output["keypoints"] = regressor(output)
    return output


def project(points: torch.Tensor, focal: float, center: tuple[float, float]) -> torch.Tensor:
    """Pinhole projection of camera-space points (..., 3) to pixels (..., 2)."""
    depth = points[..., 2:].clamp(min=1e-3)
    xy = points[..., :2] / depth * focal
    # Python numbers, not a tensor made per call: no host-to-device copy in the fit's loop on CUDA.
    return torch.stack([xy[..., 0] + center[0], xy[..., 1] + center[1]], dim=-1)


def energy(
    fit: AnnyFit, targets: Targets, params: Body3dParams, stage: str, shape=None
) -> dict[str, torch.Tensor]:
    """Each term of the energy for the current unknowns (``shape``: the phenotype's fixed terms)."""
    joints = fit.joints(shape)  # (N, 23, 3) camera space
    residual = (project(joints, targets.focal, targets.center) - targets.keypoints) * targets.scale
    squared = (residual**2).sum(-1)
    robust = params.robust_px**2 * squared / (squared + params.robust_px**2)  # Geman-McClure
    count = max(1, len(joints))
    terms = {"reprojection": (targets.weights * robust).sum() / count}
    model_world = joints[:, list(WORLD_TO_COCO23.values())]
    model_world = model_world - joints[:, [11, 12]].mean(dim=1, keepdim=True)
    world_error = ((model_world - targets.world) ** 2).sum(-1)
    terms["world"] = params.w_world * (targets.world_weights * world_error).sum() / count
    smooth = (fit.translation.diff(dim=0) ** 2).sum() * 10 + (fit.root.diff(dim=0) ** 2).sum()
    if stage == "all":
        terms["pose"] = params.w_pose * (fit.rotations**2).sum() / count
        terms["shape"] = params.w_shape * fit.shape_prior()
        smooth = smooth + (fit.rotations.diff(dim=0) ** 2).sum()
    terms["smooth"] = params.w_smooth * smooth / count
    return terms


def initial_translation(keypoints: np.ndarray, weights: np.ndarray, K: np.ndarray, fitted: np.ndarray):
    """Per-frame root position from the person's pixel height (1.7 m tall) and mid-hip position."""
    count = len(keypoints)
    translation = np.zeros((count, 3))
    known = np.flatnonzero(fitted & ((weights > 0).sum(axis=1) >= MIN_KEYPOINTS))
    for index in known:
        seen = keypoints[index][weights[index] > 0]
        pixel_height = max(seen[:, 1].max() - seen[:, 1].min(), 8.0)
        depth = K[0, 0] * 1.5 / pixel_height  # nose to ankle is about 1.5 m
        hips = keypoints[index, [11, 12]][weights[index, [11, 12]] > 0]
        anchor = hips.mean(axis=0) if len(hips) else seen.mean(axis=0)
        translation[index] = (
            (anchor[0] - K[0, 2]) * depth / K[0, 0],
            (anchor[1] - K[1, 2]) * depth / K[1, 1],
            depth,
        )
    for axis in range(3):  # frames in gaps: linear interpolation
        translation[:, axis] = np.interp(np.arange(count), known, translation[known, axis])
    return translation


def fit(*args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
    """Fit Anny to a video's keypoints (:func:`solve`'s arguments); returns numpy arrays of the fit,
    its residuals and the posed vertices."""
    fit_module, result = solve(*args, **kwargs)
    with torch.no_grad():
        result["vertices"] = np.concatenate(list(posed_vertices(fit_module)))
    return result


def solve(
    keypoints25: np.ndarray,
    world33: np.ndarray,
    valid: np.ndarray,
    K: np.ndarray,
    resolution: int,
    params: Body3dParams,
    anny_cache: str | Path,
    device: str = "cpu",
    mesh_joints: bool = False,
) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """Fit Anny to a video's keypoints: the fitted module (pose it with :func:`posed_vertices`) and
    numpy arrays of the fit and its residuals.

    ``mesh_joints``: regress the joints from the whole skinned mesh every step (the slow
    reference path; same values).
    """
    keypoints, weights = to_coco23(np.where(valid[:, None, None], keypoints25, 0.0), params.min_confidence)
    constrained, fitted = usable_frames(weights, params.max_gap)
    if not constrained.any():
        raise ConfigError("no frame has enough keypoints for the body fit")
    world = np.nan_to_num(world33[:, list(WORLD_TO_COCO23)], nan=0.0).astype(np.float64)
    world_weights = np.where(constrained[:, None], world[..., 3], 0.0)
    world_weights = np.where(world_weights >= params.min_confidence, world_weights, 0.0)
    init_translation = initial_translation(keypoints, weights, K, fitted)
    fit_module = body_model_fit(params, anny_cache, len(keypoints), init_translation, device, mesh_joints)
    dtype = fit_module.translation.dtype
    tensor = lambda array: torch.as_tensor(np.asarray(array), dtype=dtype, device=device)  # noqa: E731
    targets = Targets(
        keypoints=tensor(keypoints),
        weights=tensor(weights * constrained[:, None]),
        world=tensor(world[..., :3]),
        world_weights=tensor(world_weights),
        focal=float(K[0, 0]),
        center=(float(K[0, 2]), float(K[1, 2])),
        scale=256.0 / resolution,
    )
    with torch_threads(params.threads):
        optimize(fit_module, targets, params)
    with torch.no_grad():
        joints = fit_module.joints()
        projected = project(joints, targets.focal, targets.center)
    error = np.linalg.norm(projected.cpu().numpy() - keypoints, axis=-1)
    seen = weights > 0
    residual = np.where(
        seen.any(axis=1), (error * seen).sum(axis=1) / np.maximum(seen.sum(axis=1), 1), np.nan
    )
    return fit_module, {
        "deltas": fit_module.deltas().detach().cpu().numpy().astype(np.float32),
        "phenotype": fit_module.phenotype_values().detach().cpu().numpy().astype(np.float32),
        "joints3d": joints.cpu().numpy().astype(np.float32),
        "joints2d": projected.cpu().numpy().astype(np.float32),
        "residual_px": residual.astype(np.float32),
        "constrained": constrained,
        "fitted": fitted,
        "faces": fit_module.faces(),
    }


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's CPU threads set to ``count`` (0: left as they are) for the duration.

    The fit's tensors are small (frames x 17 bones x 4 x 4), so extra threads only wait on each
    other: on the shared 2-core machine one thread made each step 5x faster than two.
    """
    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def optimize(fit_module: torch.nn.Module, targets: Targets, params: Body3dParams) -> None:
    """Adam on the energy: the root pose alone first, then everything."""
    with torch.no_grad():  # the phenotype stays fixed while the root is fitted
        root_shape = fit_module.shape_terms()
    stages = [
        ("root", [fit_module.root, fit_module.translation], params.root_iterations, root_shape),
        ("all", list(fit_module.parameters()), params.iterations, None),
    ]
    for stage, unknowns, iterations, shape in stages:
        optimizer = torch.optim.Adam(unknowns, lr=params.learning_rate)
        for step in progress(range(iterations), iterations, f"fit ({stage})", unit="step"):
            optimizer.zero_grad(set_to_none=True)
            terms = energy(fit_module, targets, params, stage, shape)
            total = sum(terms.values())
            total.backward()
            optimizer.step()
            if (step % 20 == 0 or step == iterations - 1) and log.isEnabledFor(logging.DEBUG):
                log.debug("%s %d: %s", stage, step, {k: round(v.item(), 3) for k, v in terms.items()})


def posed_vertices(fit_module: torch.nn.Module, chunk: int = 64) -> Iterator[np.ndarray]:
    """Every frame's mesh as float32 (n, V, 3) blocks of ``chunk`` frames (call under no_grad)."""
    for start in range(0, len(fit_module.root), chunk):
        yield fit_module.posed(slice(start, start + chunk))["vertices"].cpu().numpy().astype(np.float32)


def run(
    pose2d_h5: str | Path,
    frames_h5: str | Path,
    out: str | Path,
    params: Body3dParams,
    anny_cache: str | Path,
    device: str = "auto",
    preview_mp4: str | Path | None = None,
    preview_seconds: float = 4.0,
    mesh_joints: bool = False,
) -> None:
    """Fit the body to every frame of a subject; write the body3d cache and a mesh overlay video.

    ``mesh_joints``: the slow reference path of :func:`fit` (benchmarks and tests).
    """
    from posetransfer.devices import resolve_device

    if params.backend not in ("anny", "smplx"):
        raise ConfigError(f"body3d.backend: unknown backend {params.backend!r}")
    with cache.open_cache(frames_h5, "frames") as frames_cache, cache.open_cache(pose2d_h5, "pose2d") as pose:
        attrs = {key: frames_cache.attrs[key] for key in ("crop_box", "source_size", "resolution")}
        keypoints, world, valid = pose.read("keypoints"), pose.read("world_landmarks"), pose.read("valid")
        source_sha256, fps = frames_cache.attrs["source_sha256"], float(frames_cache.attrs["fps"])
    resolution = int(attrs["resolution"])
    K = camera_intrinsics(attrs, params.focal)
    device = resolve_device(device)
    torch.manual_seed(0)
    fit_module, result = solve(
        keypoints, world, valid, K, resolution, params, anny_cache, device, mesh_joints
    )
    constrained, fitted = result["constrained"], result["fitted"]
    interpolated = np.flatnonzero(fitted & ~constrained)
    skipped = np.flatnonzero(~fitted)
    log.info(
        "fitted %d of %d frames; mean reprojection error %.2f px at %d px",
        fitted.sum(), len(fitted), np.nanmean(result["residual_px"][constrained]), resolution,
    )  # fmt: skip
    if len(interpolated):
        log.warning(
            "%d frames without keypoints interpolated: %s", len(interpolated), format_ranges(interpolated)
        )
    if len(skipped):
        log.warning("%d frames in long gaps not fitted: %s", len(skipped), format_ranges(skipped))
    preview_frames = min(len(fitted), max(1, round(preview_seconds * fps)))
    with cache.write_cache(out, "body3d", asdict(params), source_sha256) as writer:
        writer.array("deltas", result["deltas"])
        preview_vertices = write_vertices(writer, fit_module, preview_frames)
        for name in ("joints3d", "joints2d", "residual_px", "fitted", "constrained"):
            writer.array(name, result[name])
        writer.array("phenotype", result["phenotype"])
        writer.array("faces", result["faces"])
        writer.attrs.update(
            {
                "backend": params.backend,
                "resolution": resolution,
                "camera_K": K,
                "phenotype_names": ",".join(
                    PHENOTYPE_NAMES
                    if params.backend == "anny"
                    else [f"beta{i}" for i in range(len(result["phenotype"]))]
                ),
                "coordinates": "camera space (OpenCV axes, metres); pixels at the frames' resolution",
            }
        )
    log.info("wrote %s", out)
    if preview_mp4 is not None:
        with cache.open_cache(frames_h5, "frames") as frames_cache:  # frames read as they are drawn
            write_preview(
                frames_cache.dataset("frames"),
                preview_vertices,
                result["faces"],
                K,
                fitted,
                fps,
                preview_mp4,
                preview_seconds,
                picture_in_crop(attrs),
            )


def write_vertices(writer: cache.CacheWriter, fit_module: torch.nn.Module, keep: int) -> np.ndarray:
    """Pose and append every frame's mesh to ``vertices`` a chunk at a time; the first ``keep``."""
    count, size = len(fit_module.root), fit_module.num_vertices
    kept = []
    with torch.no_grad(), writer.rows("vertices", count, (size, 3), np.float32) as rows:
        for block in posed_vertices(fit_module):
            rows.append(block)
            if sum(map(len, kept)) < keep:
                kept.append(block[: keep - sum(map(len, kept))])
    return np.concatenate(kept)


def crop_camera(K: np.ndarray, resolution: int):
    """The raster camera of the crop: at the origin, OpenCV axes, intrinsics ``K``."""
    K = np.asarray(K, dtype=np.float64)
    from posetransfer.raster import Camera

    return Camera(resolution, resolution, K[0, 0], K[1, 1], K[0, 2], K[1, 2], np.eye(3), np.zeros(3))


def shade(frame: np.ndarray, normal: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The frame with the mesh drawn over it, grey Lambert-shaded toward the camera."""
    light = np.clip(-normal[..., 2], 0.0, 1.0)[..., None]  # camera looks along +z
    mesh = (60 + 180 * light) * np.array([0.8, 0.9, 1.0])
    out = frame.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * mesh[mask]
    return out.astype(np.uint8)


def write_preview(
    frames: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    fitted: np.ndarray,
    fps: float,
    path: str | Path,
    seconds: float = 4.0,
    picture: tuple[float, float, float, float] | None = None,
) -> None:
    """An H.264 clip of the first seconds: the frame | the fitted mesh over it.

    ``picture``: where the video lies in the crop (``input_warnings.picture_in_crop``); the
    mesh is not drawn over the padding outside it (legs out of frame stay out of the preview).
    """
    from posetransfer import preview
    from posetransfer.raster import Rasterizer
    from posetransfer.video import write_h264

    resolution = frames.shape[1]
    camera = crop_camera(K, resolution)
    rasterizer = Rasterizer(faces, vertices.shape[1], device="cpu", reference_vertices=vertices[0])
    count = min(len(frames), max(1, round(seconds * fps)))
    centres = np.arange(resolution) + 0.5
    x0, y0, x1, y1 = picture or (0, 0, resolution, resolution)
    inside = ((centres >= y0) & (centres < y1))[:, None] & ((centres >= x0) & (centres < x1))[None, :]

    def tiles():
        for index in range(count):
            raster = rasterizer.render(vertices[index], camera)
            overlay = shade(frames[index], raster.normal, raster.mask & inside)
            text = f"frame {index}" + ("" if fitted[index] else " (not fitted)")
            yield np.concatenate([preview.label(frames[index], text), overlay], axis=1)

    write_h264(path, tiles(), fps=fps)


def body_model_fit(
    params: Body3dParams,
    anny_cache: str | Path,
    count: int,
    init_translation: np.ndarray,
    device: str,
    mesh_joints: bool = False,
) -> torch.nn.Module:
    """The unknowns and forward pass of the configured body model (frozen model, float64)."""
    if params.backend == "smplx":
        return SmplFit(load_smpl(params), count, init_translation).to(device)
    model, regressor, joints_model = frozen_anny(str(Path(anny_cache).resolve()), device)
    return AnnyFit(model, regressor, joints_model, count, init_translation, mesh_joints).to(device)


@functools.lru_cache(maxsize=2)
def frozen_anny(anny_cache: str, device: str):
    """Anny, its COCO-23 regressor and their AnnyJoints on ``device``, frozen; loaded once per
    process (about 10 s), so that fits in one process (tests, benchmarks) share them."""
    from posetransfer.anny_joints import AnnyJoints
    from posetransfer.synthetic.body import _import_anny

    anny = _import_anny(Path(anny_cache))
    model = anny.Anny().to(device)
    regressor = anny.KeypointsRegressor.coco(model).to(device)
    for module in (model, regressor):
        module.requires_grad_(False)
    bones = [list(model.bone_labels).index(name) for name in FITTED_BONES]
    return model, regressor, AnnyJoints(model, regressor, [0, *bones])
