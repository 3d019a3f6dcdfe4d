"""Self-transfer evaluation (Sec. 4.1): render a subject's validation frames from their pose labels.

On the validation split (the last 10% of valid frames, never trained on), at the model's
resolution: SSIM and PSNR on the whole frame and on the person's box (the mask's bounding box),
Robust-SSIM/PSNR on the M validation frames whose poses are farthest from every training pose,
and the temporal error E_temp of the rendered sequence under the real frames' optical flow.
FID needs InceptionV3 weights from the user; without them ``metrics.json`` says why it is absent.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from posetransfer import metrics, outputs, preview, render
from posetransfer.dataset import SubjectData, SubjectPaths
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


def run(subject_dir: str | Path, model: str | Path, out_json: str | Path, samples_png: str | Path,
        robust_count: int = 10, inception_weights: str | None = None,
        robust_png: str | Path | None = None, lpips_weights: str | None = None) -> dict:  # fmt: skip
    """Evaluate the model on its subject's validation frames; write metrics JSON and a sample grid."""
    renderer, meta = render.load(model)
    resolution = int(meta["resolution"])
    data = SubjectData(SubjectPaths.in_folder(subject_dir), resolution)
    val = data.val_index
    labels = np.ascontiguousarray(data.pose[val])
    started = time.perf_counter()
    ours = render.render(renderer, labels)
    ms_per_frame = 1000 * (time.perf_counter() - started) / max(1, len(labels))
    real = np.stack([to_uint8(image) for image in data.batch(val)["image"]])
    per_frame = [frame_scores(r, o, m > 0) for r, o, m in zip(real, ours, data.mask[val], strict=True)]
    result = {
        "frames": len(val),
        "resolution": resolution,
        "variant": renderer.variant,
        "render_ms_per_frame": ms_per_frame,
        **summarise(per_frame),
    }
    robust = metrics.robust_frames(data.keypoints[data.train_index], data.keypoints[val], m=robust_count)
    robust_scores = summarise([per_frame[i] for i in robust]) if len(robust) else {}
    result.update({f"robust_{key}": value for key, value in robust_scores.items() if key in ("ssim", "psnr")})
    result["robust_frames"] = [int(val[i]) for i in robust]
    consecutive = np.flatnonzero(np.diff(val) == 1)  # pairs (val[i], val[i + 1]) of adjacent frames
    if len(consecutive):
        flows = data.flow_backward[val[consecutive]]
        confidence = data.confidence[val[consecutive]]
        pairs = np.stack([np.stack([ours[i], ours[i + 1]]) for i in consecutive])
        errors = [
            metrics.temporal_error(p, f[None], c[None])
            for p, f, c in zip(pairs, flows, confidence, strict=True)
        ]
        result["temporal_error"] = float(np.mean(errors))
    lpips_path, lpips_reason = metrics.resolve_weights_file(
        lpips_weights, metrics.LPIPS_WEIGHTS_KEY, metrics.LPIPS_UNAVAILABLE, "AlexNet"
    )
    result["lpips"] = float(metrics.LPIPSDistance(lpips_path)(real, ours).mean()) if lpips_path else None
    result["lpips_unavailable"] = lpips_reason
    _, reason = metrics.resolve_inception_weights(inception_weights)  # a missing file is an error
    result["fid"] = None  # FID compares cross-subject transfer with the target's frames
    result["fid_unavailable"] = reason or "FID is measured on pose transfer: results/transfer/*/metrics.json"
    outputs.write_json(out_json, result)
    log.info("%s", ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float)))
    picks = list(robust[:3]) or [0]
    tiles, names = [], []
    for i in picks:
        error = np.abs(real[i].astype(np.int16) - ours[i].astype(np.int16)).max(axis=-1)
        error_map = np.repeat(np.clip(error * 4, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        tiles += [real[i], ours[i], error_map]
        names += [f"frame {val[i]} real", "ours", "|error| x4"]
    preview.save_png(samples_png, preview.contact_sheet(tiles, names, tile=192, columns=3))
    if robust_png is not None:  # the challenging poses, real | ours, two pairs a row
        tiles, names = [], []
        for i in robust if len(robust) else [0]:
            tiles += [real[i], ours[i]]
            names += [f"frame {val[i]} real", f"ours {per_frame[i]['psnr']:.1f} dB"]
        preview.save_png(robust_png, preview.contact_sheet(tiles, names, tile=160, columns=4))
    return result
