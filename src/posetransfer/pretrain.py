"""Person-agnostic UV-generator pretraining (Eq. 6) on the IUV of every subject listed for it.

The UV generator learns pose label -> (part probabilities, UV) from all subjects' 3D labels and
IUV (cross-entropy on the 25 parts + L1 on the true part's UV over body pixels); every subject's
training then starts from ``uvgen_pretrained.pt``. The checkpoint is a plain dict.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from posetransfer import preview
from posetransfer.dataset import SubjectData, SubjectPaths
from posetransfer.model import losses
from posetransfer.model.networks import UVGenerator
from posetransfer.progress import progress
from posetransfer.tracking import TrainingLog
from posetransfer.training import PRESETS, save_checkpoint, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """The ``pretrain`` section, plus the generator size and resolution of the training preset."""

    epochs: int = 2
    batch: int = 4
    learning_rate: float = 0.0002
    resolution: int | None = 64
    ngf: int = 16
    n_down: int = 4
    n_blocks: int = 3
    seed: int = 0

    @classmethod
    def from_config(cls, config: dict) -> PretrainConfig:
        preset = PRESETS[config["train"]["preset"]]
        pick = lambda section, key: preset[key] if config[section][key] is None else config[section][key]  # noqa: E731
        return cls(
            epochs=config["pretrain"]["epochs"],
            batch=config["pretrain"]["batch"],
            learning_rate=config["train"]["learning_rate"],
            resolution=pick("train", "resolution"),
            ngf=pick("model", "ngf"),
            n_down=config["model"]["n_down"],
            n_blocks=pick("model", "n_blocks"),
            seed=config["seed"],
        )


def run(
    subject_dirs: Sequence[str | Path],
    out: str | Path,
    config: PretrainConfig,
    device: str = "auto",
    tensorboard: bool = True,
) -> None:
    """Pretrain on the valid frames of every subject; write the UV generator's weights to ``out``.

    With ``tensorboard``, losses, learning rate, steps/s and a parts/UV sample per epoch go to
    ``tensorboard/`` beside ``out`` (people's view only: the weights are the same without).
    """
    from posetransfer.devices import resolve_device

    device = resolve_device(device)
    seed_everything(config.seed)
    subjects = [SubjectData(SubjectPaths.in_folder(folder), config.resolution) for folder in subject_dirs]
    samples = [(s, int(t)) for s, data in enumerate(subjects) for t in np.flatnonzero(data.valid)]
    model = UVGenerator(ngf=config.ngf, n_down=config.n_down, n_blocks=config.n_blocks).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.5, 0.999))
    steps = max(1, len(samples) // config.batch)
    log.info(
        "pretraining the UV generator on %d frames of %d subjects, %d steps/epoch",
        len(samples),
        len(subjects),
        steps,
    )
    history = []
    board = TrainingLog(Path(out).parent / "tensorboard") if tensorboard else None
    for epoch in range(config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(samples))
        for step in progress(range(steps), steps, f"pretrain epoch {epoch + 1}/{config.epochs}", unit="step"):
            picks = [samples[i] for i in order[step * config.batch : (step + 1) * config.batch]]
            batches = [subjects[s].batch(np.array([t]), device) for s, t in picks]
            batch = {key: torch.cat([b[key] for b in batches]) for key in batches[0]}
            logits, uv = model(batch["pose"])
            terms = losses.uv_pretrain_loss(logits, uv, batch["parts"], batch["uv"])
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            history.append({key: value.item() for key, value in terms.items()})
            _track_step(board, epoch * steps + step + 1, history[-1], optimizer)
        if board is not None:
            board.image("samples/parts_uv", (epoch + 1) * steps, _sample_grid(batch, logits, uv))
        last = history[-steps:]
        log.info(
            "epoch %d: parts CE %.4f, UV L1 %.4f",
            epoch + 1, np.mean([h["parts"] for h in last]), np.mean([h["uv"] for h in last]),
        )  # fmt: skip
    if board is not None:
        board.close()
    save_checkpoint(
        Path(out), {"uv_generator": model.state_dict(), "config": asdict(config), "history": history}
    )
    log.info("wrote %s", out)


def _track_step(
    board: TrainingLog | None, step: int, terms: dict[str, float], optimizer: torch.optim.Optimizer
) -> None:
    """Loss terms, learning rate and steps/s of one step in TensorBoard (nothing without a board)."""
    if board is None:
        return
    values = {f"loss/{name}": value for name, value in terms.items()}
    values["train/lr"] = optimizer.param_groups[0]["lr"]
    rate = board.rate(step)
    if rate is not None:
        values["train/steps_per_second"] = rate
    board.scalars(step, values)


def _sample_grid(batch: dict[str, torch.Tensor], logits: torch.Tensor, uv: torch.Tensor) -> np.ndarray:
    """The batch's first frame: pose label, true parts, predicted parts, predicted UV (U red, V green)."""
    from matplotlib import colormaps

    palette = np.zeros((logits.shape[1], 3), np.uint8)  # part 0 (background) black
    palette[1:] = (colormaps["gist_rainbow"](np.linspace(0, 1, logits.shape[1] - 1))[:, :3] * 255).astype(
        np.uint8
    )
    with torch.no_grad():
        predicted = logits[0].argmax(0)
        index = (predicted - 1).clamp(min=0)
        picked = uv[0].gather(0, index[None, None].expand(1, 2, -1, -1))[0]  # (2, H, W): UV of that part
        body = (predicted > 0).float()
        uv_rgb = torch.cat([picked * body, torch.zeros_like(picked[:1])]) * 255
        pose = (batch["pose"][0, :3].float().clamp(-1, 1) + 1) * 127.5
    tiles = [
        pose.round().byte().permute(1, 2, 0).cpu().numpy(),
        palette[batch["parts"][0].cpu().numpy()],
        palette[predicted.cpu().numpy()],
        uv_rgb.round().byte().permute(1, 2, 0).cpu().numpy(),
    ]
    return preview.contact_sheet(
        tiles, ["pose label", "true parts", "predicted parts", "predicted UV"], 160, 4
    )
