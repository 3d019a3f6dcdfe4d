"""Pose transfer: a trained subject (the target) performs a driving video's motion (Sec. 4.3).

Three steps, one function each:

1. ``normalise_keypoints`` (:mod:`posetransfer.normalise`): the driving 2D skeleton is mapped to
   the target's height and position, Everybody-Dance-Now style.
2. ``TargetPoser``: the target's fitted body shape with the driving fit's bone rotations and root
   orientation, moved per frame by the translation that best projects its joints onto the
   normalised skeleton in the target's camera (a linear least-squares problem for a pinhole),
   then rasterised into the 3D label and IUV by the labels3d stage's own writer.
3. ``run``: both halves of the pose label rendered by the target's model, over its learned
   background, the driving video's background or any image or video; written as an H.264 video
   (driving | driving skeleton, normalised | result) at the driving video's frame rate, and
   optionally pasted back into the target's full original frames.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posetransfer import cache, iuv, labels3d, metrics, outputs, preview, render, video
from posetransfer.body3d import MIN_KEYPOINTS, crop_camera, pose_body, to_coco23
from posetransfer.dataset import pose_label, resize_images
from posetransfer.errors import ConfigError, NoPersonError
from posetransfer.normalise import normalise_keypoints
from posetransfer.pose2d import Pose2dParams, skeleton_image
from posetransfer.progress import progress
from posetransfer.raster import Rasterizer

log = logging.getLogger(__name__)

BACKGROUND_CHOICES = ("target", "driving")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CHUNK = 32  # frames posed, rendered and written at a time: memory stays flat in the video's length


@dataclass(frozen=True)
class TransferParams:
    """The ``transfer`` section of the config (without the pairs, which the workflow expands)."""

    normalise: bool = True
    paste_back: bool = False
    background: str = "target"
    compile: bool = False  # torch.compile the renderer (CUDA graphs): slow to start, faster per frame

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> TransferParams:
        keys = ("normalise", "paste_back", "background", "compile")
        return cls(**{key: section[key] for key in keys if key in section})


# --- 2. the target's body in the driving pose ----------------------------------------------------


def place_on_skeleton(
    joints: np.ndarray, keypoints: np.ndarray, weights: np.ndarray, K: np.ndarray, ridge: float = 0.01
) -> np.ndarray:
    """Per-frame offsets (N, 3) moving camera-space joints (N, J, 3) onto 2D keypoints (N, J, 2).

    For a pinhole, ``f (X + dx) / (Z + dz) + c = u`` is linear in the offset:
    ``f dx - (u - c) dz = (u - c) Z - f X`` (likewise for y). Rows are weighted by the keypoints'
    confidences; a small ridge (``ridge`` x focal per metre) keeps poorly seen frames in place.
    Frames with fewer than ``MIN_KEYPOINTS`` weighted joints take offsets interpolated from others.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = keypoints[..., 0] - cx, keypoints[..., 1] - cy
    X, Y, Z = joints[..., 0], joints[..., 1], joints[..., 2]
    zero, ones = np.zeros_like(du), np.ones_like(du)
    rows = np.concatenate(
        [np.stack([fx * ones, zero, -du], -1), np.stack([zero, fy * ones, -dv], -1)], axis=1
    )  # (N, 2J, 3)
    rhs = np.concatenate([du * Z - fx * X, dv * Z - fy * Y], axis=1)  # (N, 2J)
    w = np.concatenate([weights, weights], axis=1)
    normal = np.einsum("nr,nri,nrj->nij", w, rows, rows) + ((ridge * fx) ** 2 + 1e-9) * np.eye(3)
    offsets = np.linalg.solve(normal, np.einsum("nr,nri,nr->ni", w, rows, rhs)[..., None])[..., 0]
    seen = (weights > 0).sum(axis=1) >= MIN_KEYPOINTS
    if not seen.any():
        raise NoPersonError("no driving frame has enough keypoints to place the target's body")
    for axis in range(3):
        offsets[:, axis] = np.interp(np.arange(len(offsets)), np.flatnonzero(seen), offsets[seen, axis])
    return offsets


class TargetPoser:
    """The target's fitted body in each driving pose, in the target's camera, a few frames at a time:
    its shape with the driving fit's bone rotations, moved onto the normalised skeleton."""

    def __init__(
        self,
        target_body3d: str | Path,
        driving_body3d: str | Path,
        keypoints: np.ndarray,
        min_confidence: float,
        anny_cache: str | Path,
    ) -> None:
        from posetransfer.synthetic.body import _import_anny

        with cache.open_cache(target_body3d, "body3d") as target:
            self.phenotype, self.K = target.read("phenotype"), np.asarray(target.attrs["camera_K"])
            backend = target.attrs.get("backend", "anny")
        with cache.open_cache(driving_body3d, "body3d") as driving:
            self.deltas, self.fitted = driving.read("deltas"), driving.read("fitted")
        if backend != "anny":
            raise ConfigError(
                f"body3d.backend: transfer supports the anny backend, {target_body3d} is {backend}"
            )
        if len(self.deltas) != len(keypoints):
            raise ConfigError(
                f"{driving_body3d} has {len(self.deltas)} frames, its pose2d has {len(keypoints)}"
            )
        anny = _import_anny(Path(anny_cache))
        self.model = anny.Anny()
        self.regressor = anny.KeypointsRegressor.coco(self.model)
        self.coco, weights = to_coco23(keypoints, min_confidence)
        self.weights = weights * self.fitted[:, None]

    def __len__(self) -> int:
        return len(self.deltas)

    @torch.no_grad()
    def vertices(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, V, 3) float32 vertices of frames ``start`` to ``stop``."""
        dtype = self.model.dtype
        shape = torch.as_tensor(self.phenotype, dtype=dtype)
        output = pose_body(
            self.model, self.regressor, shape, torch.as_tensor(self.deltas[start:stop], dtype=dtype)
        )
        vertices = output["vertices"].numpy().astype(np.float64)
        joints = output["keypoints"].numpy().astype(np.float64)
        offsets = place_on_skeleton(joints, self.coco[start:stop], self.weights[start:stop], self.K)
        return (vertices + offsets[:, None]).astype(np.float32)

    def poses(self, batch: int = 32) -> Iterator[np.ndarray | None]:
        """Each frame's vertices in order (None where the driving fit has none), ``batch`` posed at once."""
        for start in range(0, len(self), batch):
            for index, vertices in enumerate(self.vertices(start, min(start + batch, len(self))), start):
                yield vertices if self.fitted[index] else None


def write_transfer_labels(
    out: str | Path,
    poser: TargetPoser,
    target_body3d: str | Path,
    anny_cache: str | Path,
    preview_png: str | Path,
) -> None:
    """A labels3d cache (3D label, IUV, mask) of the posed target, by the labels3d stage's writer;
    the frames are posed and rasterised as they are written."""
    with cache.open_cache(target_body3d, "body3d") as target:
        faces, K = target.read("faces"), np.asarray(target.attrs["camera_K"])
        resolution, source_sha256 = int(target.attrs["resolution"]), target.attrs["source_sha256"]
    fitted = poser.fitted
    first = int(np.flatnonzero(fitted)[0]) if fitted.any() else 0
    reference = poser.vertices(first, first + 1)[0]
    rasterizer = Rasterizer(faces, len(reference), device="cpu", reference_vertices=reference)
    draw = partial(
        labels3d.render_labels, rasterizer, faces=faces, camera=crop_camera(K, resolution),
        charts=iuv.anny_charts(anny_cache),
    )  # fmt: skip
    section = {"laplacian": "cotangent", "scale": labels3d.LAPLACIAN_SCALE, "posed": "transfer"}
    labels3d.write_labels(out, section, source_sha256, resolution, poser.poses(), draw, fitted, "3D labels")
    labels3d.write_preview(out, preview_png)


# --- 3. rendering and the videos -----------------------------------------------------------------


Backdrop = np.ndarray | Iterator[np.ndarray] | None  # see backdrops


def backdrops(spec: str, driving_dir: Path, resolution: int) -> Backdrop:
    """What the person is rendered over: None (the model's background), one (1, R, R, 3) uint8
    image, or a video's (R, R, 3) frames one by one, again and again (a shorter video repeats),
    so that a long background video is never held whole (:func:`next_backdrops`)."""
    if spec == "target":
        return None
    if spec == "driving":
        with cache.open_cache(driving_dir / "background.h5", "background") as background:
            return _square(background.read("background"), resolution)[None]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError("transfer.background: no such file (expected target, driving or a path)", path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError("transfer.background: cannot read this image", path)
        return _square(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), resolution)[None]
    empty = ConfigError("transfer.background: the video has no frames", path)
    frames = (_square(image, resolution) for image in looped_frames(path, empty))
    first = next(frames)  # an empty video fails here, before anything is written
    return itertools.chain([first], frames)


def next_backdrops(backdrop: Backdrop, count: int) -> np.ndarray | None:
    """The backdrops of the next ``count`` frames: the one image for all, or the video's next."""
    if backdrop is None or isinstance(backdrop, np.ndarray):
        return backdrop
    return np.stack([next(backdrop) for _ in range(count)])


def _square(image: np.ndarray, resolution: int) -> np.ndarray:
    """An image's centre square at ``resolution`` px."""
    side = (resolution, resolution)
    return cv2.resize(_center_square(image), side, interpolation=cv2.INTER_AREA)


def _center_square(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


@torch.no_grad()
def render_frames(
    renderer: torch.nn.Module,
    labels: np.ndarray,
    background: np.ndarray | None,
    batch: int = 8,
    device: str = "cpu",
    body: np.ndarray | None = None,
) -> np.ndarray:
    """Render (N, R, R, 6) pose labels over the model's background or ``background`` (1 or N, R, R, 3).

    ``body``: the posed target body's IUV images (N, R, R, 3), for models with the body prior.
    """
    if background is not None and getattr(renderer, "variant", None) == "pose_to_image":
        raise ConfigError("transfer.background: variant pose_to_image has no background to replace")
    return render.render(renderer, labels, batch, device, background, body)


def side_by_side(driving: np.ndarray, skeleton: np.ndarray, result: np.ndarray) -> Iterator[np.ndarray]:
    """Frames of the comparison video: driving | its normalised skeleton | result, labelled."""
    side = driving.shape[1]
    for frame, bones, ours in zip(driving, skeleton, result, strict=True):
        ours = cv2.resize(ours, (side, side), interpolation=cv2.INTER_CUBIC)
        yield np.concatenate(
            [preview.label(frame, "driving"), preview.label(bones, "skeleton"), preview.label(ours, "ours")],
            axis=1,
        )


def looped_frames(path: str | Path, empty: Exception) -> Iterator[np.ndarray]:
    """The frames of a video, again and again (a shorter video repeats); ``empty`` is raised if it
    has none."""
    while True:
        count = 0
        for image in video.read_frames(path):
            count += 1
            yield image
        if count == 0:
            raise empty


def paste_back(ours: np.ndarray, original: np.ndarray, crop_box: np.ndarray) -> np.ndarray:
    """A rendered crop placed into the target's original frame.

    The crop holds the person in every frame of the target's video, so outside it the original
    frame shows only the scene.
    """
    x0, y0, side = (round(float(v)) for v in crop_box)
    frame = original.copy()
    crop = cv2.resize(ours, (side, side), interpolation=cv2.INTER_CUBIC)
    height, width = frame.shape[:2]
    top, left, bottom, right = max(y0, 0), max(x0, 0), min(y0 + side, height), min(x0 + side, width)
    if bottom > top and right > left:
        frame[top:bottom, left:right] = crop[top - y0 : bottom - y0, left - x0 : right - x0]
    return frame


def fid_features(weights: str | None) -> tuple[metrics.InceptionFeatures | None, str | None]:
    """The InceptionV3 features for the transfer's FID, or None and why it is unavailable."""
    path, reason = metrics.resolve_inception_weights(weights)
    return (metrics.InceptionFeatures(path), None) if path is not None else (None, reason)


def frames_features(features: metrics.InceptionFeatures, frames_h5: Path, resolution: int) -> np.ndarray:
    """Inception features of a frames cache's frames at ``resolution``, read a chunk at a time."""
    with cache.open_cache(frames_h5, "frames") as frames:
        count = len(frames.dataset("frames"))
        chunks = (frames.read("frames", slice(start, start + CHUNK)) for start in range(0, count, CHUNK))
        return np.concatenate([features(resize_images(chunk, resolution)) for chunk in chunks])


def run(
    driving_dir: str | Path,
    target_dir: str | Path,
    model_path: str | Path,
    out_video: str | Path,
    out_json: str | Path,
    labels_h5: str | Path,
    labels_png: str | Path,
    params: TransferParams,
    pose_params: Pose2dParams,
    anny_cache: str | Path,
    inception_weights: str | None = None,
    target_video: str | Path | None = None,
    pasted_video: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Make the driving subject's motion performed by the target; write the videos and metrics."""
    from posetransfer.devices import resolve_device

    device = resolve_device(device)
    driving_dir, target_dir = Path(driving_dir), Path(target_dir)
    with cache.open_cache(driving_dir / "pose2d.h5", "pose2d") as pose:
        keypoints, valid = pose.read("keypoints"), pose.read("valid")
    with cache.open_cache(target_dir / "pose2d.h5", "pose2d") as pose:
        target_keypoints, target_valid = pose.read("keypoints"), pose.read("valid")
    with cache.open_cache(driving_dir / "frames.h5", "frames") as frames:
        driving_side, fps = frames.dataset("frames").shape[1], float(frames.attrs["fps"])
    with cache.open_cache(target_dir / "frames.h5", "frames") as frames:
        resolution, crop_box = frames.dataset("frames").shape[1], np.asarray(frames.attrs["crop_box"])
    if driving_side != resolution:  # both at the target's frame resolution
        keypoints = keypoints * np.array([resolution / driving_side] * 2 + [1.0], np.float32)
    if not valid.any():
        raise NoPersonError("no driving frame shows a person", driving_dir / "pose2d.h5")
    if params.normalise:
        keypoints, _ = normalise_keypoints(
            keypoints, valid, target_keypoints, target_valid, pose_params.min_confidence
        )
    keypoints = np.where(valid[:, None, None], keypoints, 0.0).astype(np.float32)
    renderer, meta = render.load(model_path, device, compile=params.compile)  # before anything is written
    if pasted_video is not None and target_video is None:
        raise ConfigError("transfer.paste_back: the target's original video is needed to paste into")
    poser = TargetPoser(
        target_dir / "body3d.h5", driving_dir / "body3d.h5", keypoints, pose_params.min_confidence, anny_cache
    )
    write_transfer_labels(labels_h5, poser, target_dir / "body3d.h5", anny_cache, labels_png)
    model_resolution = int(meta["resolution"])
    backdrop = backdrops(params.background, driving_dir, model_resolution)
    features, fid_unavailable = fid_features(inception_weights)
    result_features, seconds = [], 0.0
    with ExitStack() as stack:
        labels = stack.enter_context(cache.open_cache(labels_h5, "labels3d"))
        driving = stack.enter_context(cache.open_cache(driving_dir / "frames.h5", "frames"))
        videos = [stack.enter_context(video.H264Writer(out_video, fps, crf=20))]
        if pasted_video is not None:
            videos.append(stack.enter_context(video.H264Writer(pasted_video, fps, crf=20)))
            empty = NoPersonError("the target's video has no frames to paste into", target_video)
            originals = looped_frames(target_video, empty)
        chunks = range(0, len(keypoints), CHUNK)
        for start in progress(chunks, len(chunks), "render", unit="chunk"):
            frames = slice(start, start + CHUNK)
            skeletons = np.stack([skeleton_image(k, resolution, pose_params) for k in keypoints[frames]])
            started = time.perf_counter()
            label = pose_label(skeletons, labels.read("laplacian", frames), model_resolution)
            # The target's body in the driving poses, for the body prior's UV generator.
            body = render.body_iuv(labels, model_resolution, frames)
            scene = next_backdrops(backdrop, len(label))
            result = render_frames(renderer, label, scene, device=device, body=body)
            seconds += time.perf_counter() - started
            driven = resize_images(driving.read("frames", frames), resolution)
            for frame in side_by_side(driven, skeletons, result):
                videos[0].write(frame)
            if pasted_video is not None:
                for ours in result:
                    videos[1].write(paste_back(ours, next(originals), crop_box))
            if features is not None:
                result_features.append(features(result))
    fid = None
    if features is not None:
        target_features = frames_features(features, target_dir / "frames.h5", model_resolution)
        fid = metrics.fid(np.concatenate(result_features), target_features)
    ms_per_frame = 1000 * seconds / len(keypoints)
    summary = {
        "driving": driving_dir.name,
        "target": target_dir.name,
        "frames": len(keypoints),
        "fps": fps,
        "resolution": model_resolution,
        "driving_frames_with_person": int(valid.sum()),
        "driving_frames_fitted": int(poser.fitted.sum()),
        "render_ms_per_frame": ms_per_frame,
        "background": params.background,
        "normalised": params.normalise,
        "fid": fid,
        "fid_unavailable": fid_unavailable,
    }
    outputs.write_json(out_json, summary)
    log.info("wrote %s: %d frames at %.2f fps, %.1f ms/frame", out_video, len(keypoints), fps, ms_per_frame)
    return summary


# --- the command line: a trained model and any driving video -------------------------------------


def preprocess_driving(video_path: Path, work: Path, config: Mapping[str, Any], device: str) -> Path:
    """Frames, 2D keypoints and the body fit of a driving video (plus its background when used).

    The same stages as the workflow, into ``work``; a stage whose cache exists is not run again
    (caches are written atomically, so an existing one is complete).
    """
    previews = work / "previews"
    created = [folder for folder in (work, previews) if not folder.exists()]
    previews.mkdir(parents=True, exist_ok=True)
    try:
        _run_steps(video_path, work, previews, config, device)
    except BaseException:
        for folder in reversed(created):  # a failed first step leaves no empty folders behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return work


def _run_steps(video_path: Path, work: Path, previews: Path, config: Mapping[str, Any], device: str) -> None:
    from posetransfer import background, body3d, frames, masks, pose2d

    steps = [
        ("frames", lambda out: frames.run(video_path, out, previews / "frames.png",
                                          frames.FramesParams.from_config(config["frames"]))),
        ("pose2d", lambda out: pose2d.run(work / "frames.h5", out, previews / "pose2d.mp4",
                                          Pose2dParams.from_config(config["pose2d"]), video_path.stem)),
        ("body3d", lambda out: body3d.run(work / "pose2d.h5", work / "frames.h5", out,
                                          body3d.Body3dParams.from_config(config["body3d"]),
                                          config["anny_cache_dir"], device)),
    ]  # fmt: skip
    if config["transfer"]["background"] == "driving":
        steps += [
            ("masks", lambda out: masks.run(work / "frames.h5", out, previews / "masks.png",
                                            masks.MasksParams.from_config(config["masks"]))),
            ("background", lambda out: background.run(work / "frames.h5", work / "masks.h5", out,
                                                      previews / "background.png",
                                                      background.BackgroundParams.from_config(config["background"]))),
        ]  # fmt: skip
    for name, step in steps:
        out = work / f"{name}.h5"
        if out.is_file():
            log.info("%s exists; not run again", out)
            continue
        log.info("driving video: %s", name)
        step(out)


def run_cli(args: Any) -> dict[str, Any]:
    """``posetransfer transfer``: resolve the model, the config and the driving video, then ``run``."""
    from posetransfer.config import load_config, validate_config

    model_path = args.model / "model.pt" if args.model.is_dir() else args.model
    if not model_path.is_file():
        raise ConfigError(
            "--model: no trained model here (expected a model folder or its model.pt)", model_path
        )
    render.read_model(model_path)  # a broken model is found now, not after minutes of preprocessing
    target_dir = model_path.parent.parent  # results/{subject}/model/model.pt
    for name in ("frames.h5", "pose2d.h5", "body3d.h5"):
        if not (target_dir / name).is_file():
            raise ConfigError(
                "--model: the subject's caches must sit beside its model folder", target_dir / name
            )
    if args.config_json is not None:
        config = args.config_json
    elif args.config.is_file():
        config = load_config(args.config)
    else:
        config = validate_config({})
    anny_cache = Path(config["anny_cache_dir"])
    if not (anny_cache / "built.txt").is_file():
        raise ConfigError(
            "anny_cache_dir: the body model is not built here; run `posetransfer build-body-model "
            f"{anny_cache} {anny_cache / 'built.txt'}` once",
            anny_cache,
        )
    if args.driving_dir is not None:
        driving_dir = args.driving_dir
    else:
        if not args.driving.is_file():
            raise ConfigError("--driving: video file not found", args.driving)
        work = args.work_dir or args.out.with_name(f"{args.out.stem}.driving")
        driving_dir = preprocess_driving(args.driving, work, config, args.device)
    params = TransferParams.from_config(config["transfer"])
    labels = args.labels or args.out.with_name(f"{args.out.stem}.labels3d.h5")
    pasted = args.pasted or (args.out.with_name(f"{args.out.stem}.pasted.mp4") if args.paste_into else None)
    return run(
        driving_dir,
        target_dir,
        model_path,
        args.out,
        args.metrics or args.out.with_suffix(".json"),
        labels,
        labels.with_suffix(".png"),
        params,
        Pose2dParams.from_config(config["pose2d"]),
        anny_cache,
        config["evaluation"]["inception_weights"],
        target_video=args.paste_into,
        pasted_video=pasted,
        device=args.device,
    )
