"""Self-transfer evaluation (Sec. 4.1): render a subject's validation frames from their pose labels.

On the validation split (the last 10% of valid frames, never trained on), at the model's
resolution: SSIM and PSNR on the whole frame and on the person's box (the mask's bounding box),
Robust-SSIM/PSNR on the M validation frames whose poses are farthest from every training pose,
and the temporal error E_temp of the rendered sequence under the real frames' optical flow.
FID needs InceptionV3 weights from the user; without them ``metrics.json`` says why it is absent.

Beside the model, the same scores for the no-training baseline (``baseline_body_lookup``): the
initial texture atlas looked up through the fitted body's IUV and composited over the inpainted
background, from the caches alone. A trained model has to beat it to be worth its training.

Two more rows say where the remaining error lies. ``ceiling_real_person`` scores the real frames'
person pixels (by the mask) over the inpainted background: no renderer that composites a person
onto that background through that mask can beat it, so what it loses is the mask's and the
background's share (shadows, held objects, a dog). ``seen_poses`` scores the model (and the two
rows above) on as many training frames, spread over the training split: the gap to the
validation scores is what the model fails to carry to poses it has not seen, and the gap to the
ceiling there what it has not fitted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posetransfer import cache, metrics, outputs, preview, render
from posetransfer.dataset import SubjectData, SubjectPaths, pose_label
from posetransfer.model.networks import NUM_PARTS, HybridTexture, body_iuv_tensors, composite
from posetransfer.training import to_uint8

log = logging.getLogger(__name__)


def person_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around a binary mask, or None when it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def frame_scores(real: np.ndarray, ours: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """SSIM and PSNR of one frame, whole and on the person's box (grown to SSIM's window)."""
    scores = {"ssim": metrics.ssim(real, ours), "psnr": metrics.psnr(real, ours)}
    box = person_box(mask)
    if box is not None:
        x0, y0, x1, y1 = box
        grow_x, grow_y = max(0, metrics.SSIM_MIN_SIDE - (x1 - x0)), max(0, metrics.SSIM_MIN_SIDE - (y1 - y0))
        box = (max(0, x0 - grow_x), max(0, y0 - grow_y), x1 + grow_x, y1 + grow_y)
        scores.update(ssim_box=metrics.ssim_box(real, ours, box), psnr_box=metrics.psnr_box(real, ours, box))
    return scores


def summarise(per_frame: list[dict[str, float]]) -> dict[str, float]:
    """Means over frames; PSNR means cap identical frames at metrics.PSNR_CAP_DB."""
    out = {}
    for key in sorted({k for frame in per_frame for k in frame}):
        values = [frame[key] for frame in per_frame if key in frame]
        out[key] = metrics.mean_psnr(values) if key.startswith("psnr") else float(np.mean(values))
    return out


@torch.no_grad()
def body_lookup(atlas: np.ndarray, body: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The no-training baseline: ``atlas`` (24, S, S, 3) uint8 looked up through ``body`` IUV images
    (N, R, R, 3) uint8, over ``background`` (R, R, 3) uint8 -> (N, R, R, 3) uint8."""
    texture = HybridTexture.from_atlas(atlas, channels=3)
    parts, uv = body_iuv_tensors(body)
    probs = torch.nn.functional.one_hot(parts, NUM_PARTS + 1).permute(0, 3, 1, 2).float()
    mapped = texture(probs, probs[:, 1:, None] * uv[:, None])
    bg = torch.as_tensor(background).permute(2, 0, 1)[None].float() / 127.5 - 1
    images = composite(mapped, bg.expand(len(mapped), -1, -1, -1), probs[:, :1])
    return np.stack([to_uint8(image) for image in images])


EVAL_CHUNK = 32  # validation frames rendered and scored at once: memory flat in the video's length
Renderer = Callable[[dict[str, np.ndarray]], np.ndarray]  # compact frames -> (n, R, R, 3) uint8


@dataclass
class Scored:
    """Scores of one rendering of the validation frames, and the frames kept for pictures."""

    summary: dict[str, Any]
    per_frame_psnr: list[float]
    kept: dict[int, tuple[np.ndarray, np.ndarray]]  # position in val -> (real, ours)
    lpips: float | None = None


@dataclass
class _Tally:
    """What one renderer's validation frames have scored so far."""

    per_frame: list[dict[str, float]] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    distances: list[np.ndarray] = field(default_factory=list)
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    last: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None  # frame, ours, flow, confidence

    def add(self, start: int, frames: np.ndarray, compact: dict[str, np.ndarray], ours: np.ndarray,
            keep: set[int]) -> None:  # fmt: skip
        real = compact["image"]
        for k, frame in enumerate(frames):
            self.per_frame.append(frame_scores(real[k], ours[k], compact["mask"][k] > 0))
            if self.last is not None and self.last[0] == frame - 1:  # flow[i]: frame i + 1 -> i, real frames
                pair = np.stack([self.last[1], ours[k]])
                self.errors.append(metrics.temporal_error(pair, self.last[2][None], self.last[3][None]))
            if "flow" in compact:  # read only where the frames have neighbours
                flow, confidence = (compact[key][k].astype(np.float32) for key in ("flow", "confidence"))
                self.last = (int(frame), ours[k], flow, confidence)
            if start + k in keep:
                self.kept[start + k] = (real[k], ours[k])

    def scored(self, robust: np.ndarray) -> Scored:
        summary = summarise(self.per_frame)
        robust_scores = summarise([self.per_frame[i] for i in robust]) if len(robust) else {}
        summary.update(
            {f"robust_{key}": value for key, value in robust_scores.items() if key in ("ssim", "psnr")}
        )
        if self.errors:
            summary["temporal_error"] = float(np.mean(self.errors))
        lpips = float(np.concatenate(self.distances).mean()) if self.distances else None
        return Scored(summary, [frame["psnr"] for frame in self.per_frame], self.kept, lpips)


def score_renders(
    data: SubjectData,
    index: np.ndarray,
    draws: dict[str, Renderer],
    robust: np.ndarray,
    keep: set[int],
    lpips: metrics.LPIPSDistance | None = None,
) -> dict[str, Scored]:
    """Render the frames ``index`` chunk by chunk with each of ``draws`` (each chunk read once) and
    score them: SSIM/PSNR (frame and person box), Robust-SSIM/PSNR over the ``robust`` positions,
    E_temp over adjacent frames, and LPIPS for the first renderer."""
    tallies = {name: _Tally() for name in draws}
    adjacent = bool(np.any(np.diff(index) == 1))  # E_temp needs the flow only between neighbours
    for start in range(0, len(index), EVAL_CHUNK):
        frames = index[start : start + EVAL_CHUNK]
        compact = data.frames(frames, flow=adjacent)
        for position, (name, draw) in enumerate(draws.items()):
            ours = draw(compact)
            tallies[name].add(start, frames, compact, ours, keep if position == 0 else set())
            if lpips is not None and position == 0:
                tallies[name].distances.append(lpips(compact["image"], ours))
    return {name: tally.scored(robust) for name, tally in tallies.items()}


def model_renderer(renderer: torch.nn.Module, resolution: int) -> Renderer:
    """Compact frames -> the model's renders of their pose labels (and body IUV)."""

    def draw(compact: dict[str, np.ndarray]) -> np.ndarray:
        labels = pose_label(compact["skeleton"], compact["laplacian"], resolution)
        return render.render(renderer, labels, body=compact["iuv"])

    return draw


def lookup_renderer(atlas: np.ndarray, background: np.ndarray) -> Renderer:
    """Compact frames -> the no-training body-IUV lookup (:func:`body_lookup`)."""
    return lambda compact: body_lookup(atlas, compact["iuv"], background)


def real_person_renderer(background: np.ndarray) -> Renderer:
    """Compact frames -> their own person pixels (by the mask) over the inpainted ``background``."""
    return lambda compact: np.where(compact["mask"][..., None] > 0, compact["image"], background[None])


def seen_frames(train: np.ndarray, count: int) -> np.ndarray:
    """``count`` training frames spread evenly over the training split (all if there are fewer)."""
    if len(train) <= count:
        return train
    return train[np.linspace(0, len(train) - 1, count).round().astype(np.int64)]


def run(subject_dir: str | Path, model: str | Path, out_json: str | Path, samples_png: str | Path,
        robust_count: int = 10, inception_weights: str | None = None,
        robust_png: str | Path | None = None, lpips_weights: str | None = None) -> dict:  # fmt: skip
    """Evaluate the model on its subject's validation frames; write metrics JSON and a sample grid."""
    renderer, meta = render.load(model)
    resolution = int(meta["resolution"])
    data = SubjectData(SubjectPaths.in_folder(subject_dir), resolution)
    val = data.val_index
    robust = metrics.robust_frames(data.keypoints[data.train_index], data.keypoints[val], m=robust_count)
    keep = {int(i) for i in robust} | {0}
    lpips_path, lpips_reason = metrics.resolve_weights_file(
        lpips_weights, metrics.LPIPS_WEIGHTS_KEY, metrics.LPIPS_UNAVAILABLE, "AlexNet"
    )
    lpips = metrics.LPIPSDistance(lpips_path) if lpips_path else None
    with cache.open_cache(Path(subject_dir) / "texture.h5", "texture") as texture:
        atlas = texture.read("atlas")
    background = to_uint8(data.background_tensor())
    started = time.perf_counter()
    draws = {
        "ours": model_renderer(renderer, resolution),
        "lookup": lookup_renderer(atlas, background),
        "ceiling": real_person_renderer(background),
    }
    scored = score_renders(data, val, draws, robust, keep, lpips)
    ours, lookup = scored["ours"], scored["lookup"]
    ms_per_frame = 1000 * (time.perf_counter() - started) / max(1, len(val))
    seen = seen_frames(data.train_index, len(val))
    on_seen = score_renders(data, seen, draws, np.arange(0), set())
    result = {
        "frames": len(val),
        "resolution": resolution,
        "variant": renderer.variant,
        "render_ms_per_frame": ms_per_frame,  # reading, rendering and scoring (and the lookup's)
        "loss_terms": meta.get("loss_terms"),
        **ours.summary,
        "robust_frames": [int(val[i]) for i in robust],
        "baseline_body_lookup": lookup.summary,
        "ceiling_real_person": scored["ceiling"].summary,
        "seen_poses": {  # the model, the lookup and the ceiling on as many training frames
            "frames": len(seen),
            **on_seen["ours"].summary,
            "baseline_body_lookup": on_seen["lookup"].summary,
            "ceiling_real_person": on_seen["ceiling"].summary,
        },
        "lpips": ours.lpips,
        "lpips_unavailable": lpips_reason,
    }
    _, reason = metrics.resolve_inception_weights(inception_weights)  # a missing file is an error
    result["fid"] = None  # FID compares cross-subject transfer with the target's frames
    result["fid_unavailable"] = reason or "FID is measured on pose transfer: results/transfer/*/metrics.json"
    outputs.write_json(out_json, result)
    log.info("%s", ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float)))
    tiles, names = [], []
    for i in list(robust[:3]) or [0]:
        real, rendered = ours.kept[int(i)]
        error = np.abs(real.astype(np.int16) - rendered.astype(np.int16)).max(axis=-1)
        error_map = np.repeat(np.clip(error * 4, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        tiles += [real, rendered, error_map]
        names += [f"frame {val[i]} real", "ours", "|error| x4"]
    preview.save_png(samples_png, preview.contact_sheet(tiles, names, tile=192, columns=3))
    if robust_png is not None:  # the challenging poses, real | ours, two pairs a row
        tiles, names = [], []
        for i in robust if len(robust) else [0]:
            real, rendered = ours.kept[int(i)]
            tiles += [real, rendered]
            names += [f"frame {val[i]} real", f"ours {ours.per_frame_psnr[i]:.1f} dB"]
        preview.save_png(robust_png, preview.contact_sheet(tiles, names, tile=160, columns=4))
    return result
