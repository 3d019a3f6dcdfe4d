"""Peak memory and time of every preprocessing stage on a long subject, at several lengths and sizes.

    python bench/scale.py [--frames 300 1000 3000] [--sizes 256 512] [--stages frames pose2d ...]
                          [--video PATH] [--fit-frames 16] [--fit BODY3D.h5] [--work DIR]
                          [--source DIR] [--train-steps 3]

The long subject is a real clip looped (played forward then backward, so there is no jump) to
each length and encoded once as H.264. Every stage runs as its own ``python -m posetransfer``
process on the caches of the stages before it, as the workflow runs it; the table gives each
process's peak resident memory (``ru_maxrss``) and wall-clock seconds. A stage that
streams has the same peak at every length; its seconds grow linearly.

The body fit (about 2 s a frame on the CPU) runs on the first ``--fit-frames`` frames only, and
its row says so; labels3d and texture then read that fit repeated to the full length, which
costs them what a real fit of that length would.

``transfer`` makes the ``--model`` subject perform the long subject's motion (it is the driving
video). ``train`` runs a few full training steps (the standard preset's networks at the frames' size, no
warm-up, the workflow's streaming loader) on the subject's caches. ``--source DIR`` takes the
caches of a longer run (its first N frames of every cache) instead of running the stages again,
so training can be measured at every length from one long preprocessing run.

With ``PYTHONPATH=OTHER/src`` the stages of another checkout run instead (before/after numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "juggler_a.mp4"
STAGES = ("frames", "pose2d", "masks", "flow", "background", "body3d", "labels3d", "texture", "train",
          "transfer")  # fmt: skip
CACHES = ("frames", "pose2d", "masks", "flow", "background", "body3d", "labels3d", "texture")


def looped_video(source: Path, count: int, out: Path) -> Path:
    """``source`` played forward, backward, forward... for ``count`` frames, encoded as H.264."""
    import av

    from posetransfer.video import probe, read_frames

    if out.is_file():
        return out
    frames = list(read_frames(source))
    cycle = frames + frames[-2:0:-1]  # ping-pong: no jump where the loop restarts
    fps = probe(source).fps
    tmp = out.with_name(f".{out.name}.tmp.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index in range(count):
            image = av.VideoFrame.from_ndarray(cycle[index % len(cycle)], format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode(None))
    tmp.rename(out)
    return out


def stage_command(
    stage: str, folder: Path, video: Path, size: int, anny: Path, steps: int, model: Path | None
) -> list[str]:
    """The CLI call of ``stage`` for the subject in ``folder`` (what the workflow's rule runs)."""
    f = folder
    args = {
        "frames": [str(video), f / "frames.h5", "--preview", f / "frames.png",
                   "--params", json.dumps({"resolution": size})],
        "pose2d": [f / "frames.h5", f / "pose2d.h5", "--preview", f / "pose2d.mp4"],
        "masks": [f / "frames.h5", f / "masks.h5", "--preview", f / "masks.png"],
        "flow": [f / "frames.h5", f / "flow.h5", "--preview", f / "flow.png", "--device", "cpu"],
        "background": [f / "frames.h5", f / "masks.h5", f / "background.h5", "--preview", f / "bg.png"],
        "body3d": [f / "fit" / "pose2d.h5", f / "fit" / "frames.h5", f / "fit" / "body3d.h5",
                   "--preview", f / "fit" / "body3d.mp4", "--anny-cache", anny, "--device", "cpu"],
        "labels3d": [f / "body3d.h5", f / "labels3d.h5", "--preview", f / "labels3d.png",
                     "--anny-cache", anny],
        "texture": [f / "frames.h5", f / "labels3d.h5", f / "texture.h5", "--preview", f / "texture.png"],
        "train": [f, f / "train", size, steps],
        "transfer": ["--model", model, "--driving-dir", f, "--out", f / "transfer" / "video.mp4",
                     "--device", "cpu"],
    }[stage]  # fmt: skip
    if stage == "train":
        return [sys.executable, "-c", _TRAIN, *map(str, args)]
    return [sys.executable, "-m", "posetransfer", stage, *map(str, args)]


# A few full steps of the workflow's training (its data, loader and loop), without the warm-up.
_TRAIN = """
import dataclasses, sys
from pathlib import Path
from posetransfer import cache, training
from posetransfer.config import validate_config
from posetransfer.dataset import SubjectData, SubjectPaths
folder, out, size, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = training.TrainConfig.from_config(
    validate_config({"train": {"preset": "standard", "resolution": size}}))
config = dataclasses.replace(config, warmup_epochs=0, min_steps=0, checkpoint_every=10**9,
                             sample_every=10**9, perceptual_weights=None)
data = SubjectData(SubjectPaths.in_folder(folder), size, config.in_memory_mb,
                   config.training_uv_target)
with cache.open_cache(folder / "texture.h5", "texture") as texture:
    atlas = texture.read("atlas")
trainer = training.Trainer(config, data, atlas, out, "cpu")
trainer.run(out / "last.pt", stop_after=steps)
print("in memory" if data.in_memory else "streamed", trainer.step, "steps")
"""


# Runs the stage as a child of a small process: on Linux a child's peak RSS starts from its
# parent's at the fork, so the stage must not be forked from this (larger) process directly.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(command: list[str], log: Path) -> tuple[float, float]:
    """Run ``command``; its (peak RSS in MB, seconds). Output goes to ``log``."""
    peak_file = log.with_suffix(".peak")
    start = time.perf_counter()
    with open(log, "w") as out:
        returncode = subprocess.call(
            [sys.executable, "-c", _LAUNCHER, str(peak_file), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    seconds = time.perf_counter() - start
    if returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise SystemExit(f"{' '.join(command[2:4])} failed ({returncode}): {' | '.join(tail)}")
    return int(peak_file.read_text()) / 1024, seconds  # Linux reports kilobytes


def first_rows(source: Path, out: Path, kind: str, count: int) -> None:
    """A copy of a frames or pose2d cache holding its first ``count`` frames (the fit's input)."""
    from posetransfer import cache

    with cache.open_cache(source, kind) as cached, cache.write_cache(out, kind, {}, "bench") as writer:
        for name in cached.names():
            writer.array(name, cached.read(name, slice(0, count)))
        writer.attrs.update({k: v for k, v in cached.attrs.items() if k not in cache.PROVENANCE_ATTRS})


def prefix_cache(source: Path, out: Path, kind: str, length: int, count: int) -> None:
    """A copy of a cache holding its first ``count`` frames (``count - 1`` flow pairs), read in blocks;
    datasets that are not per frame (the background, the atlas) are copied whole."""
    from posetransfer import cache

    with cache.open_cache(source, kind) as cached:
        attrs = {k: v for k, v in cached.attrs.items() if k not in cache.PROVENANCE_ATTRS}
        with cache.write_cache(out, kind, {}, str(cached.attrs["source_sha256"])) as writer:
            for name in cached.names():
                data = cached.dataset(name)
                rows = {length: count, length - 1: count - 1}.get(data.shape[0] if data.ndim else -1)
                if kind in ("background", "texture") or rows is None:
                    writer.array(name, cached.read(name))
                    continue
                with writer.rows(name, rows, data.shape[1:], data.dtype) as rows_out:
                    for start in range(0, rows, 64):
                        rows_out.append(cached.read(name, slice(start, min(rows, start + 64))))
            writer.attrs.update(attrs)


def repeated_fit(short: Path, out: Path, count: int, resolution: int) -> None:
    """The fit of the first frames repeated (ping-pong) to ``count`` frames: labels3d's input.

    A fit made at another resolution is moved to ``resolution``: the mesh is in camera space,
    so scaling the intrinsics (and the projected joints) is all it takes.
    """
    import numpy as np

    from posetransfer import cache

    with cache.open_cache(short, "body3d") as fit:
        length = len(fit.dataset("fitted"))
        cycle = np.r_[np.arange(length), np.arange(length - 2, 0, -1)] if length > 2 else np.arange(length)
        order = cycle[np.arange(count) % len(cycle)]
        attrs = {k: v for k, v in fit.attrs.items() if k not in cache.PROVENANCE_ATTRS}
        scale = resolution / int(attrs["resolution"])
        camera_K = np.asarray(attrs["camera_K"], np.float64) * scale
        camera_K[2, 2] = 1.0
        attrs.update(resolution=resolution, camera_K=camera_K)
        per_frame = [n for n in fit.names() if n not in ("phenotype", "faces")]
        with cache.write_cache(out, "body3d", {}, str(fit.attrs["source_sha256"])) as writer:
            for name in fit.names():
                data = fit.read(name)
                data = data[order] if name in per_frame else data
                writer.array(name, data * scale if name == "joints2d" else data)
            writer.attrs.update(attrs)


def run_subject(
    video: Path, count: int, folder: Path, size: int, stages: list[str], args: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    """Every chosen stage on one subject of ``count`` frames; {stage: (peak MB, seconds)}."""
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.source is not None:  # the first frames of a longer run's caches stand in for the stages
        from posetransfer.resources import cached_frames

        frames = cached_frames(args.source / "frames.h5") or 0
        if count > frames:
            raise SystemExit(f"--source {args.source} has {frames} frames, fewer than {count}")
        for kind in CACHES:
            if (folder / f"{kind}.h5").exists():
                continue
            if count == frames:  # all of it: the source's own file
                (folder / f"{kind}.h5").symlink_to((args.source / f"{kind}.h5").resolve())
            else:
                prefix_cache(args.source / f"{kind}.h5", folder / f"{kind}.h5", kind, frames, count)
    if args.fit is not None:  # an earlier short fit stands in for body3d
        repeated_fit(args.fit, folder / "body3d.h5", count, size)
    for stage in stages:
        if stage == "body3d":
            (folder / "fit").mkdir(exist_ok=True)
            first_rows(folder / "frames.h5", folder / "fit" / "frames.h5", "frames", args.fit_frames)
            first_rows(folder / "pose2d.h5", folder / "fit" / "pose2d.h5", "pose2d", args.fit_frames)
        command = stage_command(stage, folder, video, size, args.anny_cache, args.train_steps, args.model)
        results[stage] = measure(command, folder / f"{stage}.log")
        if stage == "body3d":
            repeated_fit(folder / "fit" / "body3d.h5", folder / "body3d.h5", count, size)
        peak, seconds = results[stage]
        print(f"  {stage:<11} {peak:8.0f} MB {seconds:8.1f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument(
        "--video", type=Path, default=DEFAULT_VIDEO, help="clip to loop (default: %(default)s)"
    )
    parser.add_argument("--fit-frames", type=int, default=16, help="frames the body fit runs on")
    parser.add_argument(
        "--fit", type=Path, default=None, help="a body3d.h5 to repeat instead of fitting (skips body3d)"
    )
    parser.add_argument(
        "--source", type=Path, default=None, help="a longer run's subject folder: prefixes of its caches"
    )
    parser.add_argument("--train-steps", type=int, default=3, help="training steps the train stage makes")
    parser.add_argument(
        "--model", type=Path, default=None, help="a trained model (results/NAME/model) for the transfer stage"
    )
    parser.add_argument("--anny-cache", type=Path, default=REPO / "results" / ".anny")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for videos and caches (default: temp)"
    )
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"no video at {args.video}: give one with --video")
    stages = [s for s in STAGES if s in args.stages and not (s == "body3d" and args.fit)]  # workflow order
    if "transfer" in stages and args.model is None:
        raise SystemExit("the transfer stage needs --model: a trained model's folder beside its caches")
    needs_fit = {"labels3d", "texture"} & set(stages) and "body3d" not in stages and args.fit is None
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    print(f"cores: {os.cpu_count()}, video: {args.video.name} looped, work: {work}", flush=True)
    if needs_fit:
        print("(labels3d and texture read body3d.h5 left by an earlier run in the work folder)")
    table: dict[tuple[int, int], dict[str, tuple]] = {}
    for count in args.frames:
        video = args.video if args.source else looped_video(args.video, count, work / f"loop_{count}.mp4")
        for size in args.sizes:
            print(f"{count} frames at {size} px:", flush=True)
            table[count, size] = run_subject(video, count, work / f"{count}_{size}", size, stages, args)
    print_table(table, stages, args.fit_frames)


def print_table(table: dict[tuple[int, int], dict[str, tuple]], stages: list[str], fit_frames: int) -> None:
    """Markdown: one row per stage and size, peak MB and seconds per length."""
    counts = sorted({count for count, _ in table})
    sizes = sorted({size for _, size in table})
    print()
    print("| stage | px | " + " | ".join(f"{c} frames: peak MB, s" for c in counts) + " |")
    print("|---|---|" + "---|" * len(counts))
    for stage in stages:
        for size in sizes:
            cells = [table[c, size][stage] for c in counts]
            name = f"{stage} ({fit_frames} frames)" if stage == "body3d" else stage
            print(f"| {name} | {size} | " + " | ".join(f"{mb:.0f}, {s:.1f}" for mb, s in cells) + " |")


if __name__ == "__main__":
    main()
