"""Joint training of the UV generator, hybrid texture, D2G-Net and background (Sec. 3, Eq. 1-9).

One readable loop, nanoGPT-style: a plain config dataclass, seeds set once, a checkpoint that is a
plain dict written atomically every ``checkpoint_every`` steps and at the end, and an explicit
resume from the last one. Frames are trained in adjacent pairs (t-1, t) so the temporal loss
(Eq. 5) can compare frame t with frame t-1's generated image warped by the backward flow.

Per step (after ``warmup_epochs``; before, only the RGB branch, the UV terms and the background):
  generator:  w_l2 |I - I*|^2 + w_perceptual VGG(I, I*)         on the D2G output (Eq. 7)
              + w_regular (same on the RGB-only branch)          (Eq. 9)
              + w_gan LSGAN(D(pose, I))                          (Eq. 8)
              + w_temporal conf * |I_t - warp(I_t-1)|            (Eq. 5)
              + w_uv (CE on parts + L1 on UV against the IUV)    (Eq. 6, keeps G_uv anchored)
  discriminator: LSGAN on (pose, real) against (pose, generated)
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from posetransfer import cache, preview
from posetransfer.dataset import SubjectData, SubjectPaths
from posetransfer.errors import ConfigError
from posetransfer.model import losses
from posetransfer.model.networks import (
    Background,
    D2GNet,
    HybridTexture,
    MultiscaleDiscriminator,
    PoseToImage,
    UVGenerator,
    composite,
)
from posetransfer.progress import progress

log = logging.getLogger(__name__)

VARIANTS = ("full", "no_d2g", "rgb_texture", "no_condition", "pose_to_image")
# Table 3's ablations of the full model: settings, not architectures (``TrainConfig.for_variant``).
LOSS_ABLATIONS = {"no_temporal": {"w_temporal": 0.0}, "video_discriminator": {"temporal_discriminator": True}}
PRESETS: dict[str, dict[str, Any]] = {
    # A CPU-sized run that shows the whole method working in about a minute.
    "smoke": {
        "resolution": 64,
        "epochs": 4,
        "warmup_epochs": 1,
        "ngf": 16,
        "n_blocks": 3,
        "ndf": 16,
        "texture_size": 64,
    },
    # The paper's schedule (30 epochs, 3 warm-up, as in the authors' code) at the frames' resolution.
    "paper": {
        "resolution": None,
        "epochs": 30,
        "warmup_epochs": 3,
        "ngf": 64,
        "n_blocks": 9,
        "ndf": 64,
        "texture_size": None,
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (the ``train``, ``model`` and ``losses`` config sections)."""

    variant: str = "full"
    resolution: int | None = 64
    epochs: int = 4
    warmup_epochs: int = 1
    batch_pairs: int = 2
    learning_rate: float = 0.0002
    beta1: float = 0.5
    ngf: int = 16
    n_down: int = 4
    n_blocks: int = 3
    ndf: int = 16
    d_layers: int = 3
    num_d: int = 2
    texture_channels: int = 18
    texture_size: int | None = 64
    d2g_pose_input: str = "intermediate"
    temporal_discriminator: bool = False
    w_l2: float = 200.0
    w_perceptual: float = 10.0
    w_regular: float = 1.0
    w_gan: float = 1.0
    w_temporal: float = 100.0
    w_uv: float = 1.0
    perceptual_weights: str | None = "auto"
    checkpoint_every: int = 50
    sample_every: int = 50
    seed: int = 0
    amp: bool = True
    compile: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainConfig:
        """Build from the validated config: the preset's values, overridden by keys set explicitly."""
        train, model, weights = dict(config["train"]), dict(config["model"]), dict(config["losses"])
        preset = PRESETS[train.pop("preset")]
        values = {
            key: (preset[key] if value is None and key in preset else value) for key, value in train.items()
        }
        values.update(
            {key: (preset[key] if value is None and key in preset else value) for key, value in model.items()}
        )
        values.update({f"w_{key}": value for key, value in weights.items()})
        values["perceptual_weights"] = config["perceptual"]["weights"]
        values["seed"] = config["seed"]
        return cls(**values)

    def for_variant(self, name: str) -> TrainConfig:
        """This config for another variant: an architecture (VARIANTS) or a Table 3 ablation."""
        if name in LOSS_ABLATIONS:
            return dataclasses.replace(self, variant="full", **LOSS_ABLATIONS[name])
        return dataclasses.replace(self, variant=name)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant: unknown variant {self.variant!r}, expected one of {VARIANTS}")


class Renderer(torch.nn.Module):
    """The generator side of one variant: pose label (and UV) -> image, plus what the losses need."""

    def __init__(self, config: TrainConfig, atlas: np.ndarray, background: torch.Tensor) -> None:
        super().__init__()
        self.variant = config.variant
        channels = 3 if config.variant in ("no_d2g", "rgb_texture") else config.texture_channels
        size = dict(ngf=config.ngf, n_down=config.n_down, n_blocks=config.n_blocks)
        if config.variant == "pose_to_image":
            self.generator = PoseToImage(**size)
            return
        self.uv_generator = UVGenerator(**size)
        if config.texture_size is not None and config.texture_size != atlas.shape[1]:
            side = (config.texture_size, config.texture_size)
            atlas = np.stack([cv2.resize(part, side, interpolation=cv2.INTER_AREA) for part in atlas])
        self.texture = HybridTexture.from_atlas(atlas, channels)
        self.background = Background(tuple(background.shape[1:]), background)
        if config.variant != "no_d2g":
            pose_input = "none" if config.variant == "no_condition" else config.d2g_pose_input
            self.d2g = D2GNet(in_channels=channels, pose_input=pose_input, **size)

    def forward(
        self, pose: torch.Tensor, use_d2g: bool = True, background: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Render pose labels; ``background`` (1 or N, 3, H, W) replaces the learned one (Fig. 13)."""
        if self.variant == "pose_to_image":
            image = self.generator(pose)
            return {"image": image, "rgb_branch": image}
        logits, uv = self.uv_generator(pose)
        probs = logits.softmax(dim=1)
        mapped = self.texture(probs, uv)
        if background is None:
            background = self.background()
        background = background.to(pose).expand(len(pose), -1, -1, -1)
        p_background = probs[:, :1]
        rgb_branch = composite(mapped[:, :3], background, p_background)  # Eq. 4
        out = {"logits": logits, "uv": uv, "rgb_branch": rgb_branch, "image": rgb_branch}
        if use_d2g and self.variant != "no_d2g":
            out["image"] = composite(self.d2g(mapped, pose), background, p_background)  # Eq. 2, 3
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name, then rename: a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:  # a path would put the temporary name into the archive
            torch.save(state, handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}); delete it to start over"
        ) from exc


def pair_schedule(pairs: np.ndarray, epoch: int, batch: int, seed: int) -> list[np.ndarray]:
    """The batches of one epoch: a permutation that depends only on (seed, epoch), so resumes match."""
    order = np.random.default_rng([seed, epoch]).permutation(pairs)
    return [order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)] or [order]


class Trainer:
    """Holds the models, optimisers and data of one run; ``run`` trains to the end, resuming if it can."""

    def __init__(
        self, config: TrainConfig, data: SubjectData, atlas: np.ndarray, out_dir: Path, device: str
    ) -> None:
        self.config, self.data, self.out_dir = config, data, out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        seed_everything(config.seed)
        self.renderer = Renderer(config, atlas, data.background_tensor()).to(self.device)
        image_channels = 3 * (2 if config.temporal_discriminator else 1)
        pose_channels = 6 * (2 if config.temporal_discriminator else 1)
        self.discriminator = MultiscaleDiscriminator(
            pose_channels + image_channels, config.ndf, config.d_layers, config.num_d
        )
        self.discriminator.to(self.device)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.renderer.parameters(), lr=config.learning_rate, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.learning_rate, betas=betas)
        self.perceptual = self._perceptual()
        self.step, self.pairs = 0, data.pairs(data.train_index)
        if len(self.pairs) == 0:
            raise ConfigError("train: no pair of adjacent valid training frames")
        self.steps_per_epoch = len(pair_schedule(self.pairs, 0, config.batch_pairs, config.seed))
        self.autocast = config.amp and self.device.type == "cuda"
        # Compiling changes speed, not results; the state dict stays the plain module's.
        self.forward = torch.compile(self.renderer) if config.compile else self.renderer
        if self.device.type == "cuda":
            self.renderer.to(memory_format=torch.channels_last)

    def _perceptual(self) -> losses.VGGPerceptualLoss | None:
        path = losses.resolve_vgg_weights(self.config.perceptual_weights)
        if path is None:
            if self.config.perceptual_weights == "auto":
                log.warning(
                    "perceptual loss off: no VGG19 weights in torchvision's cache (perceptual.weights: auto)"
                )
            return None
        return losses.VGGPerceptualLoss(path).to(self.device)

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "config": asdict(self.config),
            "models": {
                "renderer": self.renderer.state_dict(),
                "discriminator": self.discriminator.state_dict(),
            },
            "optimizers": {"generator": self.opt_g.state_dict(), "discriminator": self.opt_d.state_dict()},
            "rng": _rng_state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        if state["config"] != asdict(self.config):
            raise ConfigError("train: the checkpoint was made with another config; delete it to start over")
        self.renderer.load_state_dict(state["models"]["renderer"])
        self.discriminator.load_state_dict(state["models"]["discriminator"])
        self.opt_g.load_state_dict(state["optimizers"]["generator"])
        self.opt_d.load_state_dict(state["optimizers"]["discriminator"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])

    # -- one step ---------------------------------------------------------------------------
    def _supervised(self, generated: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"l2": self.config.w_l2 * F.mse_loss(generated, real)}
        if self.perceptual is not None:
            terms["perceptual"] = self.config.w_perceptual * self.perceptual(generated, real)
        return terms

    def _disc_input(self, batch: dict[str, Any], image: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        pose = batch["current"]["pose"]
        if self.config.temporal_discriminator:
            return torch.cat([batch["previous"]["pose"], pose, previous, image], dim=1)
        return torch.cat([pose, image], dim=1)

    def train_step(self, frames: np.ndarray) -> dict[str, float]:
        config = self.config
        full = self.step >= config.warmup_epochs * self.steps_per_epoch
        batch = self.data.pair_batch(frames, self.device)
        both = {key: torch.cat([batch["previous"][key], batch["current"][key]]) for key in batch["current"]}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.forward(both["pose"], use_d2g=full)
        half = len(frames)
        image, real = out["image"].float(), both["image"]
        terms: dict[str, torch.Tensor] = {}
        if self.renderer.variant in ("pose_to_image", "no_d2g"):
            terms.update(self._supervised(image, real))  # one output: the image itself
        else:
            if full:
                terms.update(self._supervised(image, real))
            regular = self._supervised(out["rgb_branch"].float(), real)
            terms.update({f"regular_{k}": config.w_regular * v for k, v in regular.items()})
        if "logits" in out and config.w_uv > 0:
            uv_terms = losses.uv_pretrain_loss(
                out["logits"].float(), out["uv"].float(), both["parts"], both["uv"]
            )
            terms["uv"] = config.w_uv * uv_terms["total"]
        current, previous = image[half:], image[:half]
        if full and config.w_temporal > 0:
            terms["temporal"] = config.w_temporal * losses.temporal_loss(
                current, previous, batch["flow"], batch["confidence"]
            )
        if full and config.w_gan > 0:
            fake = self.discriminator(self._disc_input(batch, current, previous))
            terms["gan"] = config.w_gan * losses.lsgan_loss(fake, True)
        total = sum(terms.values())
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        record = {key: value.item() for key, value in terms.items()}
        if full and config.w_gan > 0:
            real_in = self._disc_input(batch, batch["current"]["image"], batch["previous"]["image"])
            fake_in = self._disc_input(batch, current.detach(), previous.detach())
            d_real = losses.lsgan_loss(self.discriminator(real_in), True)
            d_fake = losses.lsgan_loss(self.discriminator(fake_in), False)
            self.opt_d.zero_grad(set_to_none=True)
            (0.5 * (d_real + d_fake)).backward()
            self.opt_d.step()
            record.update(d_real=d_real.item(), d_fake=d_fake.item())
        record["total"] = total.item()
        return record

    # -- the loop ---------------------------------------------------------------------------
    def run(self, checkpoint: Path, stop_after: int | None = None) -> None:
        """Train to ``epochs``, resuming from ``checkpoint`` if it exists; ``stop_after`` simulates a kill."""
        config = self.config
        log_path = self.out_dir / "losses.csv"
        if checkpoint.exists():
            self.restore(load_checkpoint(checkpoint))
            _truncate_csv(log_path, self.step)  # steps after the checkpoint are done again
            log.info("resumed from %s at step %d", checkpoint, self.step)
        total_steps = config.epochs * self.steps_per_epoch
        bar = progress(range(self.step, total_steps), total_steps - self.step, "train", unit="step")
        for step in bar:
            epoch, within = divmod(step, self.steps_per_epoch)
            frames = pair_schedule(self.pairs, epoch, config.batch_pairs, config.seed)[within]
            self.renderer.train()
            record = self.train_step(frames)
            bar.set_postfix(
                {k: f"{v:.3g}" for k, v in record.items() if k in ("total", "l2", "regular_l2", "gan")}
            )
            self.step = step + 1
            _append_csv(log_path, {"step": self.step, "epoch": epoch, **record})
            if self.step % config.sample_every == 0 or self.step == total_steps:
                self.write_samples()
            if self.step % config.checkpoint_every == 0 or self.step == total_steps:
                save_checkpoint(checkpoint, self.state())
            if stop_after is not None and self.step >= stop_after:
                return
        log.info("trained %d steps (%d epochs of %d pairs)", total_steps, config.epochs, len(self.pairs))

    @torch.no_grad()
    def render(self, frames: np.ndarray) -> torch.Tensor:
        self.renderer.eval()
        return self.renderer(self.data.batch(frames, self.device)["pose"])["image"].float()

    def write_samples(self) -> None:
        """A grid: for a training and a validation frame, pose | real | ours | RGB branch."""
        picks = [int(self.pairs[0])] + ([int(self.data.val_index[0])] if len(self.data.val_index) else [])
        self.renderer.eval()
        with torch.no_grad():
            batch = self.data.batch(np.array(picks), self.device)
            out = self.renderer(batch["pose"])
        tiles, labels = [], []
        for row, frame in enumerate(picks):
            kind = "train" if row == 0 else "validation"
            for name, tensor in (("skeleton", batch["pose"][:, :3]), ("real", batch["image"]),
                                 ("ours", out["image"]), ("RGB branch", out["rgb_branch"])):  # fmt: skip
                tiles.append(to_uint8(tensor[row]))
                labels.append(f"{kind} {frame} {name}")
        grid = preview.contact_sheet(tiles, labels, tile=160, columns=4)
        preview.save_png(self.out_dir / "samples" / f"step_{self.step:06d}.png", grid)
        preview.save_png(self.out_dir / "samples.png", grid)  # the latest, for the report


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def _truncate_csv(path: Path, last_step: int) -> None:
    """Drop the loss rows of steps after ``last_step`` (written before a kill, redone on resume)."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= last_step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)
    os.replace(tmp, path)


def _append_csv(path: Path, row: Mapping[str, Any]) -> None:
    """One row per step; a resumed run continues the file (columns may grow after the warm-up)."""
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["step", "epoch", "name", "value"])
        for name, value in row.items():
            if name not in ("step", "epoch"):
                writer.writerow([row["step"], row["epoch"], name, f"{value:.6g}"])


def run(subject_dir: str | Path, out_dir: str | Path, config: TrainConfig, pretrained: str | Path | None,
        device: str = "auto") -> None:  # fmt: skip
    """Train one subject from its caches in ``subject_dir``; write the model and its logs to ``out_dir``.

    Work in progress (``last.pt``, ``losses.csv``, ``samples/``) lives in ``out_dir/work``; the
    final files (``model.pt``, ``losses.csv``, ``loss_curve.png``, ``samples.png``) appear in
    ``out_dir`` only at the end. So a killed run leaves no half-made final file for Snakemake to
    object to, and the same command resumes from ``work/last.pt``.
    """
    from posetransfer.synthesize import resolve_device

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    data = SubjectData(SubjectPaths.in_folder(subject_dir), config.resolution)
    with cache.open_cache(Path(subject_dir) / "texture.h5", "texture") as texture:
        atlas = texture.read("atlas")
    work = out_dir / "work"
    trainer = Trainer(config, data, atlas, work, device)
    if pretrained is not None and config.variant != "pose_to_image" and not (work / "last.pt").exists():
        state = load_checkpoint(Path(pretrained))
        trainer.renderer.uv_generator.load_state_dict(state["uv_generator"])
        log.info("UV generator starts from %s", pretrained)
    log.info(
        "training %s at %d px on %d pairs (%d validation frames), %d steps/epoch, on %s",
        config.variant,
        data.resolution,
        len(trainer.pairs),
        len(data.val_index),
        trainer.steps_per_epoch,
        device,
    )
    trainer.run(work / "last.pt")
    final = trainer.state()
    final["meta"] = {"resolution": data.resolution, "fps": data.fps, "subject_dir": str(subject_dir)}
    for name in ("losses.csv", "samples.png"):
        shutil.copyfile(work / name, out_dir / f".{name}.tmp")
        os.replace(out_dir / f".{name}.tmp", out_dir / name)
    plot_losses(out_dir / "losses.csv", out_dir / "loss_curve.png")
    save_checkpoint(out_dir / "model.pt", final)


def plot_losses(csv_path: Path, png: Path) -> None:
    """The loss curves as a PNG (log scale, one colour per term), drawn with OpenCV."""
    import cv2

    series: dict[str, list[tuple[int, float]]] = {}
    with open(csv_path) as handle:
        for row in csv.DictReader(handle):
            series.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    width, height, margin = 800, 400, 40
    image = np.full((height, width, 3), 255, np.uint8)
    steps = max(step for values in series.values() for step, _ in values)
    positive = [v for values in series.values() for _, v in values if v > 0]
    low, high = np.log10(min(positive)), np.log10(max(positive)) + 1e-6
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
              (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip
    for index, (name, values) in enumerate(sorted(series.items())):
        color = colors[index % len(colors)]
        points = [
            (margin + int((width - 2 * margin) * step / max(steps, 1)),
             height - margin - int((height - 2 * margin) * (np.log10(max(v, 1e-12)) - low) / (high - low)))
            for step, v in values if v > 0
        ]  # fmt: skip
        if len(points) > 1:
            cv2.polylines(image, [np.array(points, np.int32)], False, color, 1, cv2.LINE_AA)
        cv2.putText(
            image, name, (width - 150, 20 + 16 * index), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA
        )
    cv2.putText(image, f"loss (log10 {low:.1f}..{high:.1f}) over {steps} steps", (margin, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    preview.save_png(png, image)
