"""Joint training of the UV generator, hybrid texture, D2G-Net and background (Sec. 3, Eq. 1-9).

One readable loop, nanoGPT-style: a plain config dataclass, seeds set once, a checkpoint that is a
plain dict written atomically every ``checkpoint_every`` steps and at the end, and an explicit
resume from the last one. Frames are trained in adjacent pairs (t-1, t) so the temporal loss
(Eq. 5) can compare frame t with frame t-1's generated image warped by the backward flow.

Per step (after ``warmup_epochs``; before, only the RGB branch, the UV terms and the background):
  generator:  w_l2 |I - I*|^2 + w_perceptual VGG(I, I*)         on the D2G output (Eq. 7)
              + w_ssim (1 - MS-SSIM(I, I*))                      (structure; needs no download)
              + w_regular (same on the RGB-only branch)          (Eq. 9)
              + w_gan LSGAN(D(pose, I))                          (Eq. 8)
              + w_feature_matching |D_k(pose, I) - D_k(pose, I*)| (pix2pixHD; needs no download)
              + w_temporal conf * |I_t - warp(I_t-1)|            (Eq. 5)
              + w_uv (CE on parts + L1 on UV against the IUV)    (Eq. 6, keeps G_uv anchored)
              + w_residual |D2G-Net's residual|                  (20; 0 is the paper)
  discriminator: LSGAN on (pose, real) against (pose, generated)

The learning rate decays linearly to zero over the second half (pix2pixHD); an exponential moving
average of the generator's weights is what evaluation and inference use.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import random
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from posetransfer import cache, preview
from posetransfer.dataset import (
    MIN_VALID_FRAMES,
    SubjectData,
    SubjectPaths,
    pair_loader,
    pair_to_device,
)
from posetransfer.errors import ConfigError
from posetransfer.model import losses
from posetransfer.model.networks import MultiscaleDiscriminator
from posetransfer.model.renderer import (  # re-exported: training.TrainConfig etc. are public names
    LOSS_ABLATIONS,
    PRESETS,
    UV_INPUTS,
    VARIANTS,
    Renderer,
    TrainConfig,
)
from posetransfer.plots import plot_losses
from posetransfer.progress import progress
from posetransfer.tracking import TrainingLog

log = logging.getLogger(__name__)
__all__ = ["LOSS_ABLATIONS", "PRESETS", "UV_INPUTS", "VARIANTS", "Renderer", "TrainConfig", "Trainer", "run"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: Mapping[str, Any]) -> None:
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


# What a training run takes from a renderer prior (posetransfer.prior): D2G-Net and the
# discriminator. Not the UV generator: with the body prior it starts at the fitted body's IUV, and
# the prior's (trained on the synthetic people's outlines) cost squats_c 1 dB (README, design notes).
PRIOR_MODULES = ("d2g", "discriminator")
PRIOR_SIZES = ("ngf", "n_down", "n_blocks", "ndf", "d_layers", "num_d")


def ema_update(decay: float):
    """``multi_avg_fn`` for ``AveragedModel``: EMA with a warm-up, so short runs are not all history.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: early weights (from
    the random start) fade quickly instead of dominating a run of a few hundred steps.
    """

    def update(ema: list[torch.Tensor], current: list[torch.Tensor], averaged: torch.Tensor) -> None:
        count = float(averaged)
        torch._foreach_lerp_(ema, current, 1.0 - min(decay, (1.0 + count) / (10.0 + count)))

    return update


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """pix2pixHD's schedule: constant over the first half, then linear to zero (``train.lr_decay``)."""
    if not config.lr_decay or total_steps < 2:
        return config.learning_rate
    return config.learning_rate * min(1.0, 2.0 * (total_steps - step) / total_steps)


def pair_schedule(pairs: np.ndarray, epoch: int, batch: int, seed: int) -> list[np.ndarray]:
    """The batches of one epoch: a permutation that depends only on (seed, epoch), so resumes match."""
    order = np.random.default_rng([seed, epoch]).permutation(pairs)
    return [order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)] or [order]


def epoch_batches(data: SubjectData, pairs: np.ndarray, start: int, epochs: int | None, batch: int, seed: int,
                  workers: int) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The compact pair batches from step ``start`` to the end of ``epochs`` (None: without end),
    epoch by epoch, each epoch's order a function of (seed, epoch) only (:func:`pair_schedule`)."""
    steps_per_epoch = len(pair_schedule(pairs, 0, batch, seed))
    first_epoch, within = divmod(start, steps_per_epoch)
    for epoch in itertools.count(first_epoch) if epochs is None else range(first_epoch, epochs):
        schedule = pair_schedule(pairs, epoch, batch, seed)
        yield from pair_loader(data, schedule[within if epoch == first_epoch else 0 :], workers)


class Trainer:
    """Holds the models, optimisers and data of one run; ``run`` trains to the end, resuming if it can."""

    def __init__(
        self, config: TrainConfig, data: SubjectData, atlas: np.ndarray, out_dir: Path, device: str,
        schedule: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        """``schedule``: (total, warm-up) steps where the caller sets them (the renderer prior);
        by default ``train.epochs`` of this subject's pairs, the first ``warmup_epochs`` warm-up."""
        self.config, self.data, self.out_dir = config, data, out_dir
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
        self.ema = (
            AveragedModel(self.renderer, multi_avg_fn=ema_update(config.ema), use_buffers=True)
            if config.ema > 0
            else None
        )
        self.perceptual = self._perceptual()
        self.step, self.pairs = 0, data.pairs(data.train_index)
        if len(self.pairs) == 0:
            raise ConfigError(
                f"train: {len(data.train_index)} valid training frame(s) and no two adjacent ones: training "
                f"needs a video of at least {MIN_VALID_FRAMES} frames with the person in view"
            )
        self.steps_per_epoch = len(pair_schedule(self.pairs, 0, config.batch_pairs, config.seed))
        self.epochs = config.epochs_for(self.steps_per_epoch)
        self.total_steps, self.warmup_steps = schedule or (  # warm-up: RGB branch and UV terms only
            self.epochs * self.steps_per_epoch,
            config.warmup_epochs * self.steps_per_epoch,
        )
        out_dir.mkdir(parents=True, exist_ok=True)  # only once the data can train
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

    @property
    def inference_renderer(self) -> Renderer:
        """The renderer that evaluation and inference use: the EMA weights where kept."""
        return self.ema.module if self.ema is not None else self.renderer

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        models = {"renderer": self.renderer.state_dict(), "discriminator": self.discriminator.state_dict()}
        if self.ema is not None:
            models["ema"] = self.ema.state_dict()
        return {
            "step": self.step,
            "config": asdict(self.config),
            "models": models,
            "optimizers": {"generator": self.opt_g.state_dict(), "discriminator": self.opt_d.state_dict()},
            "rng": rng_state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        if state["config"] != asdict(self.config):
            raise ConfigError("train: the checkpoint was made with another config; delete it to start over")
        self.renderer.load_state_dict(state["models"]["renderer"])
        self.discriminator.load_state_dict(state["models"]["discriminator"])
        if self.ema is not None:
            self.ema.load_state_dict(state["models"]["ema"])
        self.opt_g.load_state_dict(state["optimizers"]["generator"])
        self.opt_d.load_state_dict(state["optimizers"]["discriminator"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])

    # -- one step ---------------------------------------------------------------------------
    def _supervised(self, generated: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"l2": self.config.w_l2 * F.mse_loss(generated, real)}
        if self.perceptual is not None:
            terms["perceptual"] = self.config.w_perceptual * self.perceptual(generated, real)
        if self.config.w_ssim > 0:
            terms["ssim"] = self.config.w_ssim * losses.structure_loss(generated, real)
        return terms

    def _disc_input(self, batch: dict[str, Any], image: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        pose = batch["current"]["pose"]
        if self.config.temporal_discriminator:
            return torch.cat([batch["previous"]["pose"], pose, previous, image], dim=1)
        return torch.cat([pose, image], dim=1)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One generator and discriminator update on a pair batch (:meth:`SubjectData.pair_batch`)."""
        config = self.config
        full = self.step >= self.warmup_steps
        half = len(batch["flow"])
        both = {key: torch.cat([batch["previous"][key], batch["current"][key]]) for key in batch["current"]}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.forward(both["pose"], use_d2g=full, body=(both["parts"], both["uv"]))
        image, real = out["image"].float(), both["image"]
        terms: dict[str, torch.Tensor] = {}
        if self.renderer.variant in ("pose_to_image", "no_d2g"):
            terms.update(self._supervised(image, real))  # one output: the image itself
        else:
            if full:
                terms.update(self._supervised(image, real))
            regular = self._supervised(out["rgb_branch"].float(), real)
            terms.update({f"regular_{k}": config.w_regular * v for k, v in regular.items()})
            if full and config.w_residual > 0 and "residual" in out:  # D2G-Net's detail, kept small
                terms["residual"] = config.w_residual * out["residual"].float().abs().mean()
        if "logits" in out and config.w_uv > 0:
            logits, uv = out["logits"].float(), out["uv"].float()  # the target: dataset.uv_target_iuv
            uv_terms = losses.uv_pretrain_loss(logits, uv, both["target_parts"], both["target_uv"])
            terms["uv"] = config.w_uv * uv_terms["total"]
        current, previous = image[half:], image[:half]
        if full and config.w_temporal > 0:
            terms["temporal"] = config.w_temporal * losses.temporal_loss(
                current, previous, batch["flow"], batch["confidence"]
            )
        adversarial = full and (config.w_gan > 0 or config.w_feature_matching > 0)
        if adversarial:
            real_in = self._disc_input(batch, batch["current"]["image"], batch["previous"]["image"])
            fake = self.discriminator(self._disc_input(batch, current, previous))
            if config.w_gan > 0:
                terms["gan"] = config.w_gan * losses.lsgan_loss(fake, True)
            if config.w_feature_matching > 0:
                with torch.no_grad():
                    real_features = self.discriminator(real_in)
                terms["feature_matching"] = config.w_feature_matching * losses.feature_matching_loss(
                    fake, real_features
                )
        total = sum(terms.values())
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update_parameters(self.renderer)
        record = {key: value.item() for key, value in terms.items()}
        if adversarial:
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
    def run(self, checkpoint: Path, stop_after: int | None = None, board_dir: Path | None = None,
            resume: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Train to ``epochs``, resuming from ``checkpoint`` if it exists; ``stop_after`` simulates a kill.

        ``board_dir``: TensorBoard event files (every loss term, learning rate, steps/s, sample grids);
        a resumed run hides the events the killed one wrote after its checkpoint. ``resume``: the
        checkpoint's state where the caller has loaded it already.
        """
        if resume is None and checkpoint.exists():
            resume = load_checkpoint(checkpoint)
        if resume is not None:
            self.restore(resume)
            _truncate_csv(self.out_dir / "losses.csv", self.step)  # steps after the checkpoint are redone
            log.info("resumed from %s at step %d", checkpoint, self.step)
        log.info("loss terms: %s", ", ".join(self.config.loss_terms(self.perceptual is not None)))
        with ExitStack() as stack:
            board = stack.enter_context(TrainingLog(board_dir, self.step)) if board_dir else None
            self._loop(checkpoint, stop_after, board)

    def _loop(self, checkpoint: Path, stop_after: int | None, board: TrainingLog | None) -> None:
        log_path = self.out_dir / "losses.csv"

        def after_step(record: dict[str, float]) -> None:
            epoch = (self.step - 1) // self.steps_per_epoch
            _append_csv(log_path, {"step": self.step, "epoch": epoch, **record})
            if self.step % self.config.sample_every == 0 or self.step == self.total_steps:
                grid = self.write_samples()
                if board is not None:
                    board.image("samples", self.step, grid)

        if self.optimise(self.batches(), checkpoint, self.state, stop_after, board, after_step):
            log.info("trained %d steps (%d epochs of %d pairs)", self.total_steps, self.epochs,
                     len(self.pairs))  # fmt: skip

    def optimise(
        self,
        batches: Iterable[dict[str, Any]],
        checkpoint: Path,
        state: Callable[[], dict[str, Any]],
        stop_after: int | None,
        board: TrainingLog | None,
        after_step: Callable[[dict[str, float]], None] | None = None,
        label: str = "train",
    ) -> bool:
        """The steps from ``self.step`` to ``total_steps``, one compact batch each: the learning rate
        of the schedule, a :meth:`train_step`, TensorBoard scalars, ``after_step(record)``, and
        ``state()`` saved to ``checkpoint`` every ``checkpoint_every`` steps and at the end.
        Returns whether it got to the end (``stop_after`` simulates a kill)."""
        config, total = self.config, self.total_steps
        bar = progress(range(self.step, total), total - self.step, label, unit="step")
        for _, compact in zip(bar, batches, strict=True):
            self.renderer.train()
            rate = learning_rate(config, self.step, total)
            for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
                group["lr"] = rate
            record = self.train_step(pair_to_device(compact, self.device))
            record["lr"] = rate
            bar.set_postfix(
                {k: f"{v:.3g}" for k, v in record.items() if k in ("total", "l2", "regular_l2", "gan")}
            )
            self.step += 1
            if board is not None:
                speed = board.rate(self.step)
                extra = {"train/steps_per_second": speed} if speed is not None else {}
                board.scalars(self.step, {**{f"loss/{k}": v for k, v in record.items() if k != "lr"},
                                          "train/lr": rate, **extra})  # fmt: skip
            if after_step is not None:
                after_step(record)
            if self.step % config.checkpoint_every == 0 or self.step == total:
                save_checkpoint(checkpoint, state())
            if stop_after is not None and self.step >= stop_after:
                return self.step >= total
        return True

    def batches(self) -> Iterator[dict[str, Any]]:
        """The compact pair batches from ``self.step`` to the end: epoch by epoch, each epoch's order a
        function of (seed, epoch) only, so a resumed run reads exactly what the uninterrupted one did."""
        config = self.config
        yield from epoch_batches(
            self.data,
            self.pairs,
            self.step,
            self.epochs,
            config.batch_pairs,
            config.seed,
            workers=config.loader_workers,
        )

    @torch.no_grad()
    def render(self, frames: np.ndarray) -> torch.Tensor:
        renderer = self.inference_renderer.eval()
        batch = self.data.batch(frames, self.device)
        return renderer(batch["pose"], body=(batch["parts"], batch["uv"]))["image"].float()

    def write_samples(self) -> np.ndarray:
        """A grid: for a training and a validation frame, pose | real | ours | RGB branch (EMA weights)."""
        picks = [int(self.pairs[0])] + ([int(self.data.val_index[0])] if len(self.data.val_index) else [])
        renderer = self.inference_renderer.eval()
        with torch.no_grad():
            batch = self.data.batch(np.array(picks), self.device)
            out = renderer(batch["pose"], body=(batch["parts"], batch["uv"]))
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
        return grid


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
        device: str = "auto", prior: str | Path | None = None) -> None:  # fmt: skip
    """Train one subject from its caches in ``subject_dir``; write the model and its logs to ``out_dir``.

    Work in progress (``last.pt``, ``losses.csv``, ``samples/``) lives in ``out_dir/work``; the
    final files (``model.pt``, ``losses.csv``, ``loss_curve.png``, ``samples.png``) appear in
    ``out_dir`` only at the end. So a killed run leaves no half-made final file for Snakemake to
    object to, and the same command resumes from ``work/last.pt``. ``prior``: a renderer prior
    (``posetransfer.prior``) the networks start from.
    """
    from posetransfer.devices import resolve_device

    out_dir = Path(out_dir)
    device = resolve_device(device)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    data = SubjectData(SubjectPaths.in_folder(subject_dir), config.resolution, config.in_memory_mb,
                       config.training_uv_target)  # fmt: skip
    log.info("training frames %s", "held in memory" if data.in_memory else "streamed from the caches")
    with cache.open_cache(Path(subject_dir) / "texture.h5", "texture") as texture:
        atlas = texture.read("atlas")
    work = out_dir / "work"
    resume = _resumable_work(work, config)
    trainer = Trainer(config, data, atlas, work, device)
    if pretrained is not None and config.variant != "pose_to_image" and resume is None:
        if config.body_prior:  # its input differs; it starts from the body's IUV instead
            log.info("UV generator starts from the fitted body's IUV (model.uv_input: %s)", config.uv_input)
        else:
            state = load_checkpoint(Path(pretrained))
            trainer.renderer.uv_generator.load_state_dict(state["uv_generator"])
            log.info("UV generator starts from %s", pretrained)
    if prior is not None and config.variant != "pose_to_image" and resume is None:
        loaded = apply_prior(trainer, prior)
        log.info("%s start from the renderer prior %s", ", ".join(loaded) or "no network", prior)
    log.info(
        "training %s at %d px on %d pairs (%d validation frames), %d steps/epoch, on %s",
        config.variant,
        data.resolution,
        len(trainer.pairs),
        len(data.val_index),
        trainer.steps_per_epoch,
        device,
    )
    trainer.run(work / "last.pt", board_dir=out_dir / "tensorboard", resume=resume)
    final = trainer.state()
    final["meta"] = {
        "resolution": data.resolution,
        "fps": data.fps,
        "subject_dir": str(subject_dir),
        "loss_terms": config.loss_terms(trainer.perceptual is not None),
        "prior": str(prior) if prior is not None else None,
    }
    for name in ("losses.csv", "samples.png"):
        shutil.copyfile(work / name, out_dir / f".{name}.tmp")
        os.replace(out_dir / f".{name}.tmp", out_dir / name)
    plot_losses(out_dir / "losses.csv", out_dir / "loss_curve.png")
    save_checkpoint(out_dir / "model.pt", final)


def apply_prior(trainer: Trainer, path: str | Path) -> list[str]:
    """Start ``trainer``'s :data:`PRIOR_MODULES` from the renderer prior at ``path``; returns the names
    loaded. A variant whose networks differ (no D2G-Net, an RGB texture) loads what fits and starts
    the rest fresh; a prior made at other network sizes is a config error naming them."""
    prior = load_checkpoint(Path(path))
    made, ours = prior["config"], asdict(trainer.config)
    differ = [f"{key} {made[key]} (this run: {ours[key]})" for key in PRIOR_SIZES if made[key] != ours[key]]
    if differ:
        raise ConfigError(
            f"pretrain.renderer: {path} was made with other network sizes: {', '.join(differ)}; "
            "delete it to remake it"
        )
    loaded = []
    for name in PRIOR_MODULES:
        module = trainer.discriminator if name == "discriminator" else getattr(trainer.renderer, name, None)
        if module is not None and _same_shapes(module.state_dict(), prior[name]):
            module.load_state_dict(prior[name])
            loaded.append(name)
    if trainer.ema is not None:  # the average starts from the prior, not from the random start
        average = ema_update(trainer.config.ema)
        trainer.ema = AveragedModel(trainer.renderer, multi_avg_fn=average, use_buffers=True)
    return loaded


def _same_shapes(ours: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor]) -> bool:
    return ours.keys() == theirs.keys() and all(ours[k].shape == theirs[k].shape for k in ours)


def _resumable_work(work: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint of work in progress with this config, to resume from (:func:`resumable_state`)."""
    return resumable_state(work / "last.pt", {"config": asdict(config)}, discard=work)


def resumable_state(checkpoint: Path, expected: Mapping[str, Any], discard: Path) -> dict[str, Any] | None:
    """The state in ``checkpoint`` where its ``expected`` entries match (training's config, the
    prior's people too), to resume from; work made otherwise, or unreadable, cannot resume this
    run: ``discard`` (the checkpoint's folder or the checkpoint) is removed, saying so."""
    if not checkpoint.exists():
        return None
    try:
        state = load_checkpoint(checkpoint)
        if all(state[key] == value for key, value in expected.items()):
            return state
    except (ConfigError, KeyError, TypeError):
        pass
    log.warning("%s was made with another config or other inputs, or is unreadable: starting over",
                checkpoint)  # fmt: skip
    if discard.is_dir():
        shutil.rmtree(discard)
    else:
        discard.unlink()
    return None
