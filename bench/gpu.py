"""The GPU check: paper-sized networks, inference, body fit, Warp rasterisation, RAFT and DIS.

    python bench/gpu.py            # one H100-class GPU: 512 px, paper-sized networks, a few minutes
    python bench/gpu.py --small    # any machine (automatic without CUDA): tiny sizes, seconds

Prints one Markdown table. Rows:
  train     one full step of ``posetransfer.training.Trainer`` (after the warm-up epochs, so every
            loss term is on; VGG19 with random weights) on random data, the paper-sized networks
            (ngf 64, 9 blocks, ndf 64, texture 200, 18 channels) at 512 px, batch 2 pairs: fp32,
            bf16 autocast of the renderer (Trainer's ``amp``), + channels_last (Trainer's layout
            on CUDA), + torch.compile (``train.compile``), and bf16 over the whole step (losses,
            VGG and discriminator too: not what Trainer does); ms per step and peak GPU memory
  render    inference through ``posetransfer.render`` (what transfer uses), batch 1 and 8
  body fit  ``posetransfer.body3d.fit`` on a synthetic standing skeleton, frames/s, CUDA and CPU
  raster    ``posetransfer.raster.Rasterizer`` (Warp ray casting) of a 20k-triangle mesh
  flow      torchvision's raft_large (random weights: speed only) against OpenCV's DIS (medium)

Everything heavy is imported inside the row that needs it, so a missing optional package
(warp, anny, ...) turns its rows into "skipped" instead of stopping the run; another error
gives a "failed" row (``--strict`` raises it instead: the test uses that). A row that would
start after ``--budget`` seconds is skipped, so a full run stays under 8 minutes.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO / "src"))  # an installed posetransfer comes first; else the source tree


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is: the paper's sizes on a GPU, tiny ones for a CPU smoke run."""

    resolution: int
    ngf: int
    n_blocks: int
    ndf: int
    texture_size: int
    batch_pairs: int
    train_steps: int
    render_frames: int
    fit_frames: int
    fit_iterations: tuple[int, int]  # (root, all)
    raster_side: int
    raster_poses: int
    raft_side: int
    raft_iters: int
    flow_pairs: int


PAPER = Sizes(512, 64, 9, 64, 200, 2, 10, 32, 32, (40, 150), 512, 50, 512, 12, 4)
SMALL = Sizes(64, 8, 1, 8, 16, 1, 1, 4, 3, (3, 5), 64, 3, 128, 2, 1)


@dataclass
class Row:
    what: str
    setting: str
    result: str
    memory: str = ""
    note: str = ""


class Bench:
    """Runs rows in order, each guarded: skipped when a module is missing or time is up."""

    def __init__(self, device: torch.device, budget_s: float, strict: bool) -> None:
        self.device, self.budget_s, self.strict = device, budget_s, strict
        self.started = time.perf_counter()
        self.rows: list[Row] = []

    def run(self, what: str, setting: str, measure: Callable[[], Row]) -> None:
        elapsed = time.perf_counter() - self.started
        if elapsed > self.budget_s:
            self.rows.append(Row(what, setting, f"skipped: over the {self.budget_s:.0f} s budget"))
            return
        try:
            row = measure()
        except ModuleNotFoundError as error:
            if self.strict:
                raise
            row = Row(what, setting, f"skipped: no module {error.name}")
        except Exception as error:  # one broken row must not cost the rest of a GPU lease
            if self.strict:
                raise
            traceback.print_exc(file=sys.stderr)
            first = (str(error).strip().splitlines() or [""])[0][:100]
            row = Row(what, setting, f"failed: {type(error).__name__}: {first}")
        row.what, row.setting = what, setting
        self.rows.append(row)
        print(f"  [{time.perf_counter() - self.started:6.1f} s] {row.what} | {row.setting} | {row.result}",
              file=sys.stderr, flush=True)  # fmt: skip

    def table(self) -> str:
        lines = ["| what | setting | result | peak GPU memory | note |", "|---|---|---|---|---|"]
        order = list(dict.fromkeys(r.what for r in self.rows))  # grouped, in the order first run
        rows = sorted(self.rows, key=lambda r: order.index(r.what))
        lines += [f"| {r.what} | {r.setting} | {r.result} | {r.memory} | {r.note} |" for r in rows]
        return "\n".join(lines)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, str]]:
    """Yields a dict whose "memory" is filled with the block's peak GPU memory (empty on CPU)."""
    found: dict[str, str] = {"memory": ""}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield found
    if device.type == "cuda":
        found["memory"] = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


def timed(device: torch.device, work: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``work``, averaged over ``repeats`` calls after the caller's warm-up."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepMode:
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    whole_step_bf16: bool = False  # losses, VGG and discriminator under autocast too (Trainer: renderer only)


def train_config(sizes: Sizes, **changes: Any) -> Any:
    from posetransfer.training import TrainConfig

    return TrainConfig(
        resolution=sizes.resolution,
        ngf=sizes.ngf,
        n_blocks=sizes.n_blocks,
        ndf=sizes.ndf,
        texture_size=sizes.texture_size,
        texture_channels=18,
        batch_pairs=sizes.batch_pairs,
        **changes,
    )


def random_atlas(sizes: Sizes) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (24, sizes.texture_size, sizes.texture_size, 3), dtype=np.uint8)


def build_renderer(sizes: Sizes, device: torch.device) -> torch.nn.Module:
    """The default variant's renderer at ``sizes``, from a random texture atlas and background."""
    from posetransfer.training import Renderer

    background = torch.rand(3, sizes.resolution, sizes.resolution) * 2 - 1
    torch.manual_seed(0)
    return Renderer(train_config(sizes), random_atlas(sizes), background).to(device)


def random_vgg_weights(folder: Path) -> Path:
    """A state dict of VGG19's feature layers with random weights: the perceptual term's cost, no download."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg19(weights=None).features.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {f"features.{k}": torch.randn(shape, generator=generator) * 0.02 for k, shape in shapes.items()}
    path = folder / "vgg19_random.pth"
    torch.save(state, path)
    return path


class BenchData:
    """What ``Trainer`` asks of a subject beyond its batches: the background and the training pairs."""

    def __init__(self, sizes: Sizes) -> None:
        self.resolution = sizes.resolution
        self.train_index = np.arange(1, 2 * sizes.batch_pairs + 2)
        self.val_index = np.zeros(0, np.int64)

    def pairs(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(index, np.int64)

    def background_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(3, self.resolution, self.resolution, device=device)


def pair_batch(sizes: Sizes, device: torch.device, channels_last: bool) -> dict[str, Any]:
    """Random inputs and targets shaped as ``SubjectData.pair_batch``'s: frames t-1 and t, flow t -> t-1."""
    n, side = sizes.batch_pairs, sizes.resolution
    generator = torch.Generator().manual_seed(1)
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        values = torch.rand(*shape, generator=generator) * (high - low) + low
        return values.to(device).contiguous(
            memory_format=layout if len(shape) == 4 else torch.contiguous_format
        )

    def frames() -> dict[str, torch.Tensor]:
        parts = torch.randint(0, 25, (n, side, side), generator=generator).to(device)
        uv = uniform(n, 2, side, side, low=0.0)
        return {
            "pose": uniform(n, 6, side, side),
            "image": uniform(n, 3, side, side),
            "parts": parts,
            "uv": uv,
            "target_parts": parts,  # the UV loss's target (dataset.uv_target_iuv)
            "target_uv": uv,
            "mask": uniform(n, 1, side, side, low=0.0).round(),
        }

    return {
        "previous": frames(),
        "current": frames(),
        "flow": uniform(n, 2, side, side, low=-3.0, high=3.0),
        "confidence": uniform(n, 1, side, side, low=0.0),
    }


def random_iuv(frames: int, side: int) -> np.ndarray:
    """DensePose-layout IUV images (part, 255 U, 255 V) with random content, uint8."""
    rng = np.random.default_rng(4)
    iuv = rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8)
    iuv[..., 0] = rng.integers(0, 25, (frames, side, side))
    return iuv


def training_step(
    sizes: Sizes, device: torch.device, mode: StepMode, vgg: Path, out_dir: Path
) -> Callable[[], Any]:
    """One full step of ``training.Trainer`` (after the warm-up epochs: every loss term) on random data."""
    from posetransfer.training import Trainer

    config = train_config(sizes, perceptual_weights=str(vgg), amp=mode.bf16, compile=mode.compile)
    trainer = Trainer(config, BenchData(sizes), random_atlas(sizes), out_dir, str(device))  # type: ignore[arg-type]
    if not mode.channels_last:  # Trainer makes the renderer channels_last on CUDA
        trainer.renderer.to(memory_format=torch.contiguous_format)
    trainer.step = config.warmup_epochs * trainer.steps_per_epoch
    batch = pair_batch(sizes, device, mode.channels_last)
    whole = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode.whole_step_bf16)

    def step() -> None:
        trainer.renderer.train()
        with whole:
            trainer.train_step(batch)

    return step


def measure_training(bench: Bench, sizes: Sizes, mode: StepMode, vgg: Path) -> Row:
    device = bench.device
    if mode.compile:
        torch._dynamo.reset()  # each row compiles afresh, within dynamo's recompilation limit
    with tempfile.TemporaryDirectory() as out_dir, peak_memory(device) as peak:
        step = training_step(sizes, device, mode, vgg, Path(out_dir))
        start = time.perf_counter()
        for _ in range(2 if device.type == "cuda" else 1):  # warm-up: cuDNN autotuning, compilation
            step()
        synchronize(device)
        warm_up = time.perf_counter() - start
        seconds = timed(device, step, sizes.train_steps)
        del step
    note = f"warm-up {warm_up:.0f} s (compilation)" if mode.compile else ""
    return Row("", "", f"{1000 * seconds:.0f} ms/step ({1 / seconds:.2f} steps/s)", peak["memory"], note)


# --- inference -----------------------------------------------------------------------------------


def measure_render(bench: Bench, sizes: Sizes, batch: int, fast: bool, compile: bool | str) -> Row:
    """ms per frame through ``posetransfer.render`` (host labels in, uint8 frames out), as transfer does."""
    from posetransfer import render

    device = bench.device
    if compile:
        torch._dynamo.reset()  # each row compiles afresh, within dynamo's recompilation limit
    frames = sizes.render_frames
    side = sizes.resolution
    labels = np.random.default_rng(2).uniform(-1, 1, (frames, side, side, 6)).astype(np.float32)
    with peak_memory(device) as peak:
        renderer = render.prepare(build_renderer(sizes, device), str(device), fast=fast, compile=compile)
        extra = {"body": random_iuv(frames, side)} if getattr(renderer, "needs_body", False) else {}

        def work(count: int = frames) -> np.ndarray:
            subset = {key: value[:count] for key, value in extra.items()}
            return render.render(renderer, labels[:count], batch, str(device), **subset)

        start = time.perf_counter()
        work(batch), work(batch)  # warm-up: cuDNN autotuning, compilation
        warm_up = time.perf_counter() - start
        ms = 1000 * timed(device, work, 1) / frames
    note = f"warm-up {warm_up:.0f} s (compilation)" if compile else ""
    return Row("", "", f"{ms:.1f} ms/frame ({1000 / ms:.0f} frames/s)", peak["memory"], note)


# --- body fit ------------------------------------------------------------------------------------

# A person standing facing the camera, BODY_25 order, as fractions of the image side.
STANDING = np.array([
    (0.50, 0.15), (0.50, 0.22), (0.42, 0.23), (0.39, 0.35), (0.38, 0.46), (0.58, 0.23), (0.61, 0.35),
    (0.62, 0.46), (0.50, 0.50), (0.45, 0.50), (0.45, 0.67), (0.45, 0.83), (0.55, 0.50), (0.55, 0.67),
    (0.55, 0.83), (0.48, 0.13), (0.52, 0.13), (0.46, 0.14), (0.54, 0.14), (0.57, 0.87), (0.58, 0.86),
    (0.55, 0.85), (0.43, 0.87), (0.42, 0.86), (0.45, 0.85),
])  # fmt: skip
WRISTS = (4, 7)


def synthetic_keypoints(frames: int, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(BODY_25 keypoints, MediaPipe world landmarks (unseen), valid, K) of arms swinging slowly."""
    keypoints = np.repeat(STANDING[None] * side, frames, axis=0)
    swing = 0.04 * side * np.sin(np.arange(frames) / 4.0)
    keypoints[:, WRISTS, 1] -= swing[:, None]
    keypoints = np.concatenate([keypoints, np.ones((frames, 25, 1))], axis=-1).astype(np.float32)
    world = np.zeros((frames, 33, 4), np.float32)  # visibility 0: no depth prior
    K = np.array([[1.2 * side, 0.0, side / 2], [0.0, 1.2 * side, side / 2], [0.0, 0.0, 1.0]])
    return keypoints, world, np.ones(frames, bool), K


def measure_body_fit(sizes: Sizes, device: str, anny_cache: Path) -> Row:
    from posetransfer import body3d

    keypoints, world, valid, K = synthetic_keypoints(sizes.fit_frames, sizes.resolution)
    root, rest = sizes.fit_iterations
    params = body3d.Body3dParams(root_iterations=root, iterations=rest)
    start = time.perf_counter()
    body3d.fit(keypoints[:2], world[:2], valid[:2], K, sizes.resolution,
               replace(params, root_iterations=1, iterations=1), anny_cache, device)  # fmt: skip
    warm_up = time.perf_counter() - start  # builds Anny's cache the first time
    synchronize(torch.device(device))
    start = time.perf_counter()
    result = body3d.fit(keypoints, world, valid, K, sizes.resolution, params, anny_cache, device)
    synchronize(torch.device(device))
    seconds = time.perf_counter() - start
    residual = float(np.nanmean(result["residual_px"]))
    return Row(
        "",
        "",
        f"{sizes.fit_frames / seconds:.2f} frames/s ({seconds:.1f} s for {sizes.fit_frames})",
        "",
        f"{root}+{rest} steps, residual {residual:.1f} px; warm-up {warm_up:.0f} s",
    )


# --- Warp rasterisation --------------------------------------------------------------------------


def sphere_mesh(rings: int = 100, segments: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere of radius 0.5 with rings x segments x 2 triangles (~20k at 100 x 100)."""
    theta = np.linspace(0, np.pi, rings + 1)[:, None]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)[None, :]
    points = np.stack(
        np.broadcast_arrays(np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)), -1
    )
    vertices = 0.5 * points.reshape(-1, 3)
    faces = []
    for r in range(rings):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            c, d = a + segments, b + segments
            faces += [(a, c, b), (b, c, d)]
    return vertices, np.array(faces, np.int32)


def measure_raster(sizes: Sizes, device: str) -> Row:
    from posetransfer.raster import Camera, Rasterizer

    vertices, faces = sphere_mesh()
    side = sizes.raster_side
    camera = Camera(side, side, 1.5 * side, 1.5 * side, side / 2, side / 2, np.eye(3), np.array([0, 0, 2.0]))
    rasterizer = Rasterizer(faces, len(vertices), device=device, reference_vertices=vertices)
    rasterizer.render(vertices, camera)  # warm-up: kernel compilation (cached by Warp)
    poses = [vertices * (1 + 0.05 * math.sin(i)) for i in range(sizes.raster_poses)]
    start = time.perf_counter()
    hits = sum(int(rasterizer.render(pose, camera).mask.sum()) for pose in poses)
    seconds = (time.perf_counter() - start) / len(poses)
    note = f"{len(faces)} triangles, {hits // len(poses)} pixels hit, arrays back on the host"
    return Row("", "", f"{1000 * seconds:.2f} ms/frame ({1 / seconds:.0f} frames/s)", "", note)


# --- optical flow --------------------------------------------------------------------------------


def flow_pair(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Two textured frames, the second shifted by (3, 2) px: something for the flow to find."""
    rng = np.random.default_rng(3)
    import cv2

    texture = cv2.GaussianBlur(rng.integers(0, 256, (side + 8, side + 8, 3), dtype=np.uint8), (0, 0), 2)
    return np.ascontiguousarray(texture[4 : 4 + side, 4 : 4 + side]), np.ascontiguousarray(
        texture[2 : 2 + side, 1 : 1 + side]
    )


def measure_raft(bench: Bench, sizes: Sizes) -> Row:
    from torchvision.models.optical_flow import raft_large

    from posetransfer.flow import raft_flow

    device = bench.device
    a, b = flow_pair(sizes.raft_side)
    pairs = [(a, b)] * sizes.flow_pairs
    with peak_memory(device) as peak:
        torch.manual_seed(0)
        model = raft_large(weights=None, progress=False).eval().to(device)
        raft_flow(pairs, model, sizes.raft_iters)
        seconds = timed(device, lambda: raft_flow(pairs, model, sizes.raft_iters), 2)
    ms = 1000 * seconds / len(pairs)
    return Row("", "", f"{ms:.1f} ms/pair ({1000 / ms:.0f} pairs/s)", peak["memory"],
               f"{sizes.raft_iters} iterations, {len(pairs)} pairs per batch, fp32")  # fmt: skip


def measure_dis(sizes: Sizes) -> Row:
    from posetransfer.flow import dis_flow

    a, b = flow_pair(sizes.raft_side)
    dis_flow(a, b)
    seconds = timed(torch.device("cpu"), lambda: dis_flow(a, b, "medium"), 5)
    return Row("", "", f"{1000 * seconds:.1f} ms/pair ({1 / seconds:.0f} pairs/s)", "", "one direction, CPU")


# --- the table -----------------------------------------------------------------------------------


def training_rows(bench: Bench, sizes: Sizes, compiled: bool) -> None:
    """Train-step rows: the eager ones, or (``compiled``) the torch.compile one."""
    modes = [("fp32", StepMode())]
    if bench.device.type == "cuda":
        modes += [
            ("bf16 autocast (renderer)", StepMode(bf16=True)),
            ("bf16 + channels_last (Trainer on CUDA)", StepMode(bf16=True, channels_last=True)),
            (
                "bf16 whole step + channels_last",
                StepMode(bf16=True, channels_last=True, whole_step_bf16=True),
            ),
            ("bf16 + channels_last + torch.compile", StepMode(bf16=True, channels_last=True, compile=True)),
        ]
    with tempfile.TemporaryDirectory() as tmp:
        vgg = random_vgg_weights(Path(tmp))
        for setting, mode in modes:
            if mode.compile == compiled:
                bench.run("train step", setting, lambda m=mode: measure_training(bench, sizes, m, vgg))


def render_rows(bench: Bench, sizes: Sizes, compiled: bool) -> None:
    """Rendering rows at batch 1 and 8: the eager ones, or (``compiled``) the torch.compile ones."""
    modes: list[tuple[str, bool, bool | str]] = [("fp32", False, False)]
    if bench.device.type == "cuda":
        modes += [
            ("bf16 + channels_last", True, False),
            ("+ compile", True, "default"),
            ("+ compile reduce-overhead (transfer.compile)", True, "reduce-overhead"),
        ]
    for batch in (1, 8):
        for setting, fast, compile in modes:
            if bool(compile) == compiled:
                measure = lambda b=batch, f=fast, c=compile: measure_render(bench, sizes, b, f, c)  # noqa: E731
                bench.run("render", f"batch {batch}, {setting}", measure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="tiny sizes (automatic without CUDA)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds after which rows are skipped")
    parser.add_argument("--strict", action="store_true", help="raise a row's error instead of reporting it")
    parser.add_argument("--anny-cache", type=Path, default=REPO / "results" / ".anny",
                        help="Anny's model cache (built there the first time, ~800 MB)")  # fmt: skip
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = SMALL if args.small or not cuda else PAPER
    if sizes is SMALL:  # a smoke run, often on a shared machine: one thread avoids spinning OpenMP threads
        torch.set_num_threads(1)
    bench = Bench(device, args.budget, args.strict)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    kind = "small" if sizes is SMALL else "paper"
    print(
        f"GPU check on {name}, torch {torch.__version__}, {kind} sizes: {sizes.resolution} px,"
        f" ngf {sizes.ngf},"
        f" {sizes.n_blocks} blocks, ndf {sizes.ndf}, texture {sizes.texture_size},"
        f" batch {sizes.batch_pairs} pairs, {torch.get_num_threads()} CPU threads\n",
        flush=True,
    )
    torch.backends.cudnn.benchmark = True
    training_rows(bench, sizes, compiled=False)
    render_rows(bench, sizes, compiled=False)
    for fit_device in ("cuda", "cpu") if cuda else ("cpu",):
        bench.run("body fit", fit_device, lambda d=fit_device: measure_body_fit(sizes, d, args.anny_cache))
    bench.run(
        "raster (Warp)", f"{device.type}, {sizes.raster_side} px", lambda: measure_raster(sizes, device.type)
    )
    bench.run("flow", f"RAFT large, {device.type}, {sizes.raft_side} px", lambda: measure_raft(bench, sizes))
    bench.run("flow", f"DIS medium, CPU, {sizes.raft_side} px", lambda: measure_dis(sizes))
    # Compilation last: where it is slow, the budget skips these rows, not the others.
    training_rows(bench, sizes, compiled=True)
    render_rows(bench, sizes, compiled=True)
    print(bench.table())
    print(f"\ntotal {time.perf_counter() - bench.started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
