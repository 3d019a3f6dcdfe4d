"""The labels3d stage: the fitted body rasterised per frame into a 3D label and a DensePose IUV.

3D label (the second half of the paper's 6-channel pose label): each body pixel carries the
Laplacian coordinates of the posed mesh in camera axes, interpolated across the face it hits. We
use the area-normalised cotangent Laplacian, i.e. the mean-curvature normal ``-2 H n``: it is a
property of the surface, not of Anny's tessellation (the uniform Laplacian of this irregular mesh
is dominated by tangential noise), and it shows both the surface's orientation toward the camera
and how sharply it bends. Normalisation: divided by a fixed 40 / m (a 5 cm sphere), clipped to
[-1, 1], so values mean the same for every subject and frame; background is 0.

IUV: DensePose's 24 parts and per-part UV charts (``posetransfer.iuv``), in DensePose's PNG layout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer import cache, iuv, iuv_import, preview
from posetransfer.body3d import crop_camera
from posetransfer.errors import ConfigError
from posetransfer.progress import progress
from posetransfer.raster import Camera, Rasterizer, interpolate

log = logging.getLogger(__name__)

# Mean-curvature normals are divided by this (1/m) and clipped to [-1, 1]: 2H of a 5 cm sphere,
# so limbs (2H ~ 10-20 / m) fill much of the range and fingers, ears and toes clip.
LAPLACIAN_SCALE = 40.0


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray, max_cot: float = 10.0) -> np.ndarray:
    """Mean-curvature normals ``(V, 3)``: the area-normalised cotangent Laplacian of one mesh.

    ``(1 / A_i) sum_j (cot a_ij + cot b_ij) / 2 (v_j - v_i)`` with ``A_i`` a third of the areas of
    the faces around ``v_i``; it equals ``-2 H n`` (mean curvature times the normal) whatever the
    tessellation. Cotangents are clamped to [0, ``max_cot``] so sliver triangles cannot dominate.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"expected (V, 3) vertices and (F, 3) faces, got {vertices.shape}, {faces.shape}")
    corners = vertices[faces]  # (F, 3, 3)
    result = np.zeros_like(vertices)
    area = np.zeros(len(vertices))
    twice_area = np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    for k in range(3):  # the corner k is opposite the edge (i, j)
        i, j = (k + 1) % 3, (k + 2) % 3
        a, b = corners[:, i] - corners[:, k], corners[:, j] - corners[:, k]
        cot = np.einsum("fc,fc->f", a, b) / np.maximum(np.linalg.norm(np.cross(a, b), axis=1), 1e-12)
        weight = np.clip(cot, 0.0, max_cot)[:, None] / 2
        edge = corners[:, j] - corners[:, i]
        np.add.at(result, faces[:, i], weight * edge)
        np.add.at(result, faces[:, j], -weight * edge)
        np.add.at(area, faces[:, k], twice_area / 6)
    return result / np.maximum(area, 1e-12)[:, None]


def render_labels(
    rasterizer: Rasterizer,
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    charts: iuv.BodyCharts | None,
    scale: float = LAPLACIAN_SCALE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's (3D label (H, W, 3) float32 in [-1, 1], IUV PNG (H, W, 3) uint8, mask (H, W)).

    Without ``charts`` (a body model whose IUV comes from elsewhere) the IUV image is all zero.
    """
    raster = rasterizer.render(vertices, camera)
    camera_axes = cotangent_laplacian(vertices, faces) @ camera.rotation.T  # world -> camera axes
    label = np.clip(interpolate(raster, camera_axes / scale, faces), -1.0, 1.0).astype(np.float32)
    if charts is None:
        return label, np.zeros((*raster.mask.shape, 3), np.uint8), raster.mask
    parts, u, v = iuv.iuv_from_raster(raster.face, raster.bary, charts)
    return label, iuv.to_densepose_png(parts, u, v), raster.mask


@dataclass(frozen=True)
class IuvParams:
    """The ``iuv`` section of the config: where the IUV images come from."""

    backend: str = "render"
    import_dir: str | None = None
    densepose_config: str | None = None
    densepose_weights: str | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> IuvParams:
        return cls(**section)


def external_iuv(params: IuvParams, frames_h5: str | Path, subject: str) -> np.ndarray | None:
    """IUV PNG images (N, R, R, 3) from a folder or from detectron2's DensePose; None to render."""
    if params.backend == "render":
        return None
    with cache.open_cache(frames_h5, "frames") as frames_cache:
        frames = frames_cache.read("frames")
    if params.backend == "import":
        if params.import_dir is None:
            raise ConfigError("iuv.import_dir: required by iuv.backend import")
        folder = Path(params.import_dir.replace("{subject}", subject))
        parts, u, v = iuv_import.import_folder(folder, len(frames), frames.shape[1])
    elif params.backend == "densepose":
        config, weights = params.densepose_config, params.densepose_weights
        if config is None or weights is None:
            raise ConfigError(
                "iuv.densepose_config and iuv.densepose_weights: required by iuv.backend densepose"
            )
        parts, u, v = iuv_import.densepose_predict(frames, config, weights)
    else:
        raise ConfigError(f"iuv.backend: unknown backend {params.backend!r}")
    log.info("IUV from %s: body on %.1f%% of pixels", params.backend, 100 * (parts > 0).mean())
    return iuv.to_densepose_png(parts, u, v)


def run(
    body3d_h5: str | Path,
    out: str | Path,
    preview_png: str | Path,
    anny_cache: str | Path,
    tiles: int = 12,
    external: np.ndarray | None = None,
) -> None:
    """3D labels and IUV for every frame of a fitted subject (IUV from ``external`` when given).

    The fit's vertices are read a few frames at a time: memory does not grow with the video.
    """
    with cache.open_cache(body3d_h5, "body3d") as fit:
        faces, fitted = fit.read("faces"), fit.read("fitted")
        K = np.asarray(fit.attrs["camera_K"])
        resolution = int(fit.attrs["resolution"])
        source_sha256 = fit.attrs["source_sha256"]
        backend = fit.attrs.get("backend", "anny")
        if backend != "anny" and external is None:
            raise ConfigError(
                f"iuv.backend: render needs body3d.backend anny (its 24-part charts); {body3d_h5} was"
                f" fitted with {backend}: use iuv.backend import or densepose"
            )
        charts = iuv.anny_charts(anny_cache) if external is None else None  # imported IUV replaces it
        camera = crop_camera(K, resolution)
        first = int(np.flatnonzero(fitted)[0]) if fitted.any() else 0
        reference = fit.read("vertices", first)
        rasterizer = Rasterizer(faces, len(reference), device="cpu", reference_vertices=reference)
        poses = (v if fitted[i] else None for i, v in enumerate(fit.iter_rows("vertices")))
        render = partial(render_labels, rasterizer, faces=faces, camera=camera, charts=charts)
        section = {"laplacian": "cotangent", "scale": LAPLACIAN_SCALE}
        write_labels(out, section, source_sha256, resolution, poses, render, fitted, "labels3d", external)
    log.info("wrote %s (Laplacian scale %.1f / m)", out, LAPLACIAN_SCALE)
    write_preview(out, preview_png, tiles)


def write_labels(
    out: str | Path,
    section: Mapping[str, Any],
    source_sha256: str,
    resolution: int,
    poses: Iterable[np.ndarray | None],
    render: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    fitted: np.ndarray,
    desc: str,
    external: np.ndarray | None = None,
) -> None:
    """Render each pose (None: an empty frame; one per ``fitted`` entry) into a labels3d cache.

    ``poses`` may be a generator: each frame is rendered and written as it comes. ``external``
    replaces the IUV.
    """
    count, size = len(fitted), (resolution, resolution)
    with cache.write_cache(out, "labels3d", section, source_sha256) as writer:
        labels = writer.frame_dataset("laplacian", count, (*size, 3), np.float16)
        iuvs = writer.frame_dataset("iuv", count, (*size, 3), np.uint8)
        masks = writer.frame_dataset("mask", count, size, bool)
        rendered = 0
        for index, pose in enumerate(progress(poses, count, desc)):
            rendered += 1
            if pose is not None:  # frames in long gaps of the fit stay empty (all zero)
                labels[index], iuvs[index], masks[index] = render(pose)
        if rendered != count:
            raise ValueError(f"{rendered} poses for {count} frames")
        if external is not None:
            if external.shape != iuvs.shape:
                raise ConfigError(f"iuv: imported IUV has shape {external.shape}, expected {iuvs.shape}")
            iuvs[...] = external
        writer.array("fitted", fitted)
        writer.attrs.update(
            {"resolution": resolution, "laplacian": "cotangent", "laplacian_scale": LAPLACIAN_SCALE}
        )


def part_colors(parts: np.ndarray) -> np.ndarray:
    """The 24 part indices (H, W) in distinct colours (a turbo colour map), background black."""
    import cv2

    scaled = (np.asarray(parts, np.float32) * (255.0 / 24)).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    colored[parts == 0] = 0
    return colored


def write_preview(labels_h5: str | Path, png: str | Path, tiles: int = 12) -> None:
    """Contact sheet: for evenly spaced frames, the 3D label (as RGB) and the IUV's part index."""
    with cache.open_cache(labels_h5, "labels3d") as labels:
        count = len(labels.dataset("iuv"))
        picks = preview.evenly_spaced(count, max(1, tiles // 2))
        images, names = [], []
        for index in picks:
            label = labels.read("laplacian", index).astype(np.float32)
            parts = labels.read("iuv", index)[..., 0]
            images += [np.round((label + 1) * 127.5).astype(np.uint8), part_colors(parts)]
            names += [f"3D label {index}", f"IUV parts {index}"]
    preview.save_png(png, preview.contact_sheet(images, names, tile=192, columns=4))


def truth_camera(truth_attrs: dict, crop_box: np.ndarray, resolution: int) -> Camera:
    """The synthetic subject's camera, moved into a frames cache's crop."""
    K = np.asarray(truth_attrs["camera_K"], dtype=np.float64)
    x0, y0, side = (float(v) for v in crop_box)
    s = resolution / side
    return Camera(
        resolution,
        resolution,
        K[0, 0] * s,
        K[1, 1] * s,
        (K[0, 2] - x0) * s,
        (K[1, 2] - y0) * s,
        np.asarray(truth_attrs["camera_R"]),
        np.asarray(truth_attrs["camera_t"]),
    )


def compare_iuv(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Part accuracy on pixels that are body in both, and mean UV error where the parts agree."""
    parts, u, v = iuv.from_densepose_png(predicted)
    true_parts, true_u, true_v = iuv.from_densepose_png(true)
    both = (parts > 0) & (true_parts > 0)
    same = both & (parts == true_parts)
    uv_error = np.hypot(u - true_u, v - true_v)[same]
    union = (parts > 0) | (true_parts > 0)
    return {
        "part_accuracy": float(same.sum() / max(both.sum(), 1)),
        "uv_error": float(uv_error.mean()) if uv_error.size else float("nan"),
        "body_iou": float(both.sum() / max(union.sum(), 1)),
    }


def run_truth(
    truth_h5: str | Path,
    frames_h5: str | Path,
    out: str | Path,
    anny_cache: str | Path,
    fitted_labels_h5: str | Path | None = None,
) -> dict[str, float]:
    """The synthetic subject's true 3D labels and IUV in the frames' crop, by the same code.

    With ``fitted_labels_h5`` (the labels3d cache made from the body fit), logs and returns how
    well the fit's IUV and 3D labels agree with the truth.
    """
    charts = iuv.anny_charts(anny_cache)
    with (
        cache.open_cache(truth_h5, "synthetic_truth") as truth,
        cache.open_cache(frames_h5, "frames") as frames,
    ):
        faces, reference = truth.read("faces"), truth.read("vertices", 0)
        attrs = {key: truth.attrs[key] for key in ("camera_K", "camera_R", "camera_t")}
        source_index = frames.read("source_index")
        crop_box, resolution = frames.attrs["crop_box"], int(frames.attrs["resolution"])
        source_sha256 = frames.attrs["source_sha256"]
        camera = truth_camera(attrs, crop_box, resolution)
        rasterizer = Rasterizer(faces, len(reference), device="cpu", reference_vertices=reference)
        poses = (truth.read("vertices", int(index)) for index in source_index)
        render = partial(render_labels, rasterizer, faces=faces, camera=camera, charts=charts)
        fitted = np.ones(len(source_index), bool)
        write_labels(out, {"truth": True}, source_sha256, resolution, poses, render, fitted, "true labels")
    if fitted_labels_h5 is None:
        return {}
    scores = compare_label_caches(fitted_labels_h5, out)
    log.info("fit against the truth: %s", ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return scores


def compare_label_caches(fitted_h5: str | Path, truth_h5: str | Path, block: int = 32) -> dict[str, float]:
    """:func:`compare_iuv`'s scores and the mean 3D label error of two labels3d caches, read in blocks."""
    totals = dict.fromkeys(("same", "both", "union", "uv_error", "label_error", "label_values"), 0.0)
    with cache.open_cache(fitted_h5, "labels3d") as fitted, cache.open_cache(truth_h5, "labels3d") as truth:
        for start in range(0, len(fitted.dataset("iuv")), block):
            rows = slice(start, start + block)
            parts, u, v = iuv.from_densepose_png(fitted.read("iuv", rows))
            true_parts, true_u, true_v = iuv.from_densepose_png(truth.read("iuv", rows))
            both = (parts > 0) & (true_parts > 0)
            same = both & (parts == true_parts)
            totals["same"] += same.sum()
            totals["both"] += both.sum()
            totals["union"] += ((parts > 0) | (true_parts > 0)).sum()
            totals["uv_error"] += np.hypot(u - true_u, v - true_v)[same].sum(dtype=np.float64)
            masks = fitted.read("mask", rows) & truth.read("mask", rows)
            difference = fitted.read("laplacian", rows).astype(np.float32) - truth.read("laplacian", rows)
            totals["label_error"] += np.abs(difference[masks]).sum(dtype=np.float64)
            totals["label_values"] += difference[masks].size
    return {
        "part_accuracy": float(totals["same"] / max(totals["both"], 1)),
        "uv_error": float(totals["uv_error"] / totals["same"]) if totals["same"] else float("nan"),
        "body_iou": float(totals["both"] / max(totals["union"], 1)),
        "label3d_error": float(totals["label_error"] / totals["label_values"])
        if totals["label_values"]
        else float("nan"),
    }
