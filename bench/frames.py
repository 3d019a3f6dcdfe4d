"""Frames-stage and synthetic-render throughput, measured in one run on this machine.

    python bench/frames.py [--video PATH] [--frames N]

Prints frames per second for: decoding alone, the whole frames stage (decode, person
detection, crop, resize, cache) at 256 and 512 px, and rendering the synthetic subject; and the
ratios between them, which are steadier than absolute numbers on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import timed

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "juggler_a.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--video", type=Path, default=DEFAULT_VIDEO, help="a real video (default: %(default)s)"
    )
    parser.add_argument("--synthetic-frames", type=int, default=48)
    parser.add_argument("--anny-cache", type=Path, default=REPO / "results" / ".anny")
    args = parser.parse_args()

    from posetransfer import frames
    from posetransfer.video import probe, read_frames

    print(f"cores: {os.cpu_count()}")
    rates: dict[str, float] = {}
    if args.video.is_file():
        info = probe(args.video)
        print(
            f"video: {args.video.name} {info.width}x{info.height}, {info.fps:.2f} fps, "
            f"{info.container_frames} frames"
        )
        count = info.container_frames
        rates["decode"] = timed("decode only", count, lambda: sum(1 for _ in read_frames(args.video)))
        with tempfile.TemporaryDirectory() as tmp:
            for size in (256, 512):
                params = frames.FramesParams(resolution=size)
                out = Path(tmp) / f"frames{size}.h5"
                rates[f"frames{size}"] = timed(
                    f"frames stage at {size} px (decode x2, detect, cache)",
                    count,
                    lambda out=out, params=params: frames.run(
                        args.video, out, out.with_suffix(".png"), params
                    ),
                )
                print(f"{'':<44} cache {out.stat().st_size / 1e6:.1f} MB")
    else:
        print(f"no real video at {args.video}: skipping the frames stage")

    from posetransfer.synthetic.scene import SceneSpec, SyntheticScene

    scene = SyntheticScene(SceneSpec(num_frames=args.synthetic_frames), cache_dir=args.anny_cache)
    scene.frame(0)  # compile Warp kernels outside the timing
    rates["render"] = timed(
        f"synthetic render {scene.spec.width}x{scene.spec.height}",
        len(scene),
        lambda: [scene.frame(i) for i in range(len(scene))],
    )
    print()
    if "frames256" in rates:
        print(f"ratio frames@512 / frames@256: {rates['frames512'] / rates['frames256']:.2f}")
        print(f"ratio frames@256 / decode:      {rates['frames256'] / rates['decode']:.3f}")
        print(f"ratio render / frames@256:      {rates['render'] / rates['frames256']:.2f}")


if __name__ == "__main__":
    main()
