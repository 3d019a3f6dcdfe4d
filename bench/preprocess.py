"""Throughput of the 2D-label stages (pose2d, masks, flow, background), measured in one run.

    python bench/preprocess.py [--video PATH] [--frames N] [--raft-weights PTH]

Runs the frames stage once per resolution (256 and 512 px) on the first N frames of a real video,
then times each label stage on that cache and prints frames per second, plus ratios between
stages and resolutions (steadier than absolute numbers on a noisy machine). With
``--raft-weights`` (torchvision raft_large) it also times RAFT against DIS; on CUDA where present.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import timed

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "juggler_a.mp4"


def bench_resolution(
    video: Path, folder: Path, size: int, count: int, raft_weights: Path | None, device: str
) -> dict[str, float]:
    """Frames at ``size`` px once, then each label stage timed on them."""
    from posetransfer import background, flow, frames, masks, pose2d

    frames_h5, masks_h5 = folder / "frames.h5", folder / "masks.h5"
    frames.run(
        video, frames_h5, folder / "frames.png", frames.FramesParams(resolution=size, max_frames=count)
    )
    rates = {
        f"pose2d{size}": timed(
            f"pose2d at {size} px",
            count,
            lambda: pose2d.run(frames_h5, folder / "pose.h5", folder / "pose.mp4", pose2d.Pose2dParams()),
        ),
        f"masks{size}": timed(
            f"masks at {size} px",
            count,
            lambda: masks.run(frames_h5, masks_h5, folder / "masks.png", masks.MasksParams()),
        ),
        f"dis{size}": timed(
            f"flow (DIS, both ways) at {size} px",
            count - 1,
            lambda: flow.run(frames_h5, folder / "flow.h5", folder / "flow.png", flow.FlowParams()),
        ),
    }
    if raft_weights is not None:
        raft = flow.FlowParams(backend="raft", raft_weights=str(raft_weights))
        rates[f"raft{size}"] = timed(
            f"flow (RAFT on {device}) at {size} px",
            count - 1,
            lambda: flow.run(frames_h5, folder / "raft.h5", folder / "raft.png", raft, device=device),
        )
    params = background.BackgroundParams()
    rates[f"background{size}"] = timed(
        f"background at {size} px",
        count,
        lambda: background.run(frames_h5, masks_h5, folder / "bg.h5", folder / "bg.png", params),
    )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--video", type=Path, default=DEFAULT_VIDEO, help="a real video (default: %(default)s)"
    )
    parser.add_argument("--frames", type=int, default=96, help="frames to use (default: %(default)s)")
    parser.add_argument("--raft-weights", type=Path, default=None, help="torchvision raft_large weights")
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"no video at {args.video}: give one with --video")

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"cores: {os.cpu_count()}, torch device: {device}, video: {args.video.name}, {args.frames} frames")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (256, 512):
            folder = Path(tmp) / str(size)
            rates.update(bench_resolution(args.video, folder, size, args.frames, args.raft_weights, device))
    print()
    for stage in ("pose2d", "masks", "dis", "background", "raft"):
        if f"{stage}256" in rates:
            print(f"ratio {stage}@256 / {stage}@512: {rates[f'{stage}256'] / rates[f'{stage}512']:.2f}")
    print(f"ratio dis@256 / pose2d@256: {rates['dis256'] / rates['pose2d256']:.2f}")
    if "raft256" in rates:
        print(f"ratio raft@256 / dis@256: {rates['raft256'] / rates['dis256']:.2f}")


if __name__ == "__main__":
    main()
