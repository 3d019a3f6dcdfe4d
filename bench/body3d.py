"""Speed and accuracy of the body fit against the synthetic subject's ground truth, in one run.

    python bench/body3d.py [--frames 48] [--resolution 128] [--workdir DIR] [--anny-cache DIR]

Renders the synthetic subject (320x384, seed 0), makes its frames and pose2d caches, then fits
the body three ways on the same keypoints:

  before      joints regressed from the whole skinned mesh every step, torch's default threads
              (the fit as it was)
  mesh, 1t    the same with one torch thread (what the thread setting alone gives)
  now         joints from AnnyJoints (no skinning), one thread: the shipped defaults

Each fit is timed as the stage runs it (Anny's load included, no preview), then turned into 3D
labels and IUV and scored against the truth as ``fit_accuracy.json`` is (labels3d.run_truth),
plus the fitted joints' distance from the true keypoints. Compare ratios within one run: the
machine may be shared. ``--workdir`` keeps the rendered subject between runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {  # name -> (body3d.threads, mesh_joints)
    "before": (0, True),
    "mesh, 1t": (1, True),
    "now": (1, False),
}


def prepare(folder: Path, count: int, resolution: int, anny_cache: Path) -> None:
    """The synthetic subject's video, truth, frames and pose2d caches (kept if already there)."""
    from posetransfer import frames, pose2d, synthesize

    if (folder / "pose2d.h5").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    params = synthesize.SyntheticParams(width=320, height=384, num_frames=count, fps=12.0, seed=0)
    synthesize.run(
        folder / "video.mp4", folder / "truth.h5", folder / "synthetic.mp4", params, anny_cache, "cpu"
    )
    frames_params = frames.FramesParams(resolution=resolution)
    frames.run(folder / "video.mp4", folder / "frames.h5", folder / "frames.png", frames_params)
    pose2d.run(folder / "frames.h5", folder / "pose2d.h5", folder / "pose2d.mp4", pose2d.Pose2dParams())


def joint_error_px(folder: Path, body3d_h5: Path) -> float:
    """Mean distance (px at the frames' resolution) of the fitted joints from the true visible ones."""
    from posetransfer import cache
    from posetransfer.keypoints import coco23_to_body25

    with (
        cache.open_cache(folder / "truth.h5") as truth,
        cache.open_cache(folder / "frames.h5") as frames,
        cache.open_cache(body3d_h5) as fit,
    ):
        x0, y0, side = (float(v) for v in frames.attrs["crop_box"])
        scale = int(frames.attrs["resolution"]) / side
        true = truth.read("keypoints")[frames.read("source_index")]
        fitted = coco23_to_body25(fit.read("joints2d"))
    true_xy = (true[..., :2] - [x0, y0]) * scale
    visible = true[..., 2] > 0.5
    return float(np.linalg.norm(fitted[..., :2] - true_xy, axis=-1)[visible].mean())


def fit_and_score(folder: Path, name: str, anny_cache: Path) -> dict[str, float]:
    """Time one body fit, then score its labels against the truth."""
    from posetransfer import body3d, cache, labels3d

    threads, mesh_joints = VARIANTS[name]
    tag = name.replace(", ", "_").replace(" ", "_")
    out = folder / f"body3d_{tag}.h5"
    params = replace(body3d.Body3dParams(), threads=threads)
    body3d.frozen_anny.cache_clear()  # every fit loads Anny, as the stage does
    start = time.perf_counter()
    body3d.run(
        folder / "pose2d.h5", folder / "frames.h5", out, params, anny_cache, "cpu", mesh_joints=mesh_joints
    )
    seconds = time.perf_counter() - start
    labels = folder / f"labels3d_{tag}.h5"
    labels3d.run(out, labels, folder / f"labels3d_{tag}.png", anny_cache)
    truth_labels = folder / f"labels3d_truth_{tag}.h5"
    scores = labels3d.run_truth(folder / "truth.h5", folder / "frames.h5", truth_labels, anny_cache, labels)
    with cache.open_cache(out) as fitted:
        count = len(fitted.read("fitted"))
        residual = float(np.nanmean(fitted.read("residual_px")))
    return {
        "s/frame": seconds / count,
        "joint_px": joint_error_px(folder, out),
        "residual_px": residual,
        **scores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=48, help="synthetic frames (default: %(default)s)")
    parser.add_argument(
        "--resolution", type=int, default=128, help="frames' resolution (default: %(default)s)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the subject here (default: a temporary one)"
    )
    parser.add_argument(
        "--anny-cache", type=Path, default=REPO / "results" / ".anny", help="Anny's model cache"
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()

    import torch

    print(
        f"cores: {os.cpu_count()}, torch threads by default: {torch.get_num_threads()}, {args.frames} frames"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        prepare(folder, args.frames, args.resolution, args.anny_cache)
        results = {name: fit_and_score(folder, name, args.anny_cache) for name in args.variants}
    columns = ["s/frame", "joint_px", "residual_px", "part_accuracy", "uv_error", "body_iou", "label3d_error"]
    print(f"\n{'fit':<10}" + "".join(f"{column:>15}" for column in columns))
    for name, row in results.items():
        print(f"{name:<10}" + "".join(f"{row[column]:>15.4f}" for column in columns))
    if "now" in results:
        for name in results:
            if name != "now":
                ratio = results[name]["s/frame"] / results["now"]["s/frame"]
                print(f"speed-up of now over {name}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
