"""Training and inference speed of the neural renderer, measured in one run.

    python bench/train.py [--subject results/synthetic] [--preset smoke] [--steps 5]

Times full training steps (after the warm-up: D2G, GAN and temporal terms on) with batch 2 pairs
at 256 and 512 px on the subject's caches, with peak memory; then inference ms per 512 x 512
frame. On CUDA it also compares AMP (bf16) on and off. Prints ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from posetransfer import cache
from posetransfer.dataset import SubjectData, SubjectPaths
from posetransfer.training import PRESETS, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(trainer: Trainer, steps: int) -> float:
    """Seconds per full training step (warm-up over), after one untimed step."""
    trainer.step = trainer.config.warmup_epochs * trainer.steps_per_epoch
    batch = trainer.data.pair_batch(trainer.pairs[: trainer.config.batch_pairs], trainer.device)
    trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def time_inference(trainer: Trainer, frames: int = 8) -> float:
    """Milliseconds per rendered frame, batch 1."""
    index = trainer.data.val_index[:1]
    trainer.render(index)
    start = time.perf_counter()
    for _ in range(frames):
        trainer.render(index)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subject", type=Path, default=REPO / "results" / "synthetic")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = {k: v for k, v in PRESETS[args.preset].items() if k != "resolution"}
    with cache.open_cache(args.subject / "texture.h5") as texture:
        atlas = texture.read("atlas")
    print(f"device {device}, preset {args.preset}, batch 2 pairs, perceptual off (no VGG weights needed)")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (256, 512):
            config = replace(TrainConfig(**preset), resolution=size, perceptual_weights="none")
            data = SubjectData(SubjectPaths.in_folder(args.subject), size)
            amp_settings = (True, False) if device.type == "cuda" else (False,)
            for amp in amp_settings:
                trainer = Trainer(replace(config, amp=amp), data, atlas, Path(tmp), str(device))
                seconds = time_steps(trainer, args.steps)
                rates[(size, amp)] = 1 / seconds
                label = f"{size} px" + (f", AMP {'on' if amp else 'off'}" if device.type == "cuda" else "")
                print(f"train {label:<20} {1 / seconds:6.2f} steps/s  peak {peak_memory_mb(device):8.0f} MB")
            if size == 512:
                print(f"inference 512 px          {time_inference(trainer):8.1f} ms/frame")
    print(f"ratio steps/s 256 / 512: {rates[(256, amp_settings[-1])] / rates[(512, amp_settings[-1])]:.2f}")
    if device.type == "cuda":
        print(f"ratio AMP on / off at 512: {rates[(512, True)] / rates[(512, False)]:.2f}")


if __name__ == "__main__":
    main()
