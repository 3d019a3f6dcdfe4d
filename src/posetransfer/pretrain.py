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

from posetransfer.dataset import SubjectData, SubjectPaths
from posetransfer.model import losses
from posetransfer.model.networks import UVGenerator
from posetransfer.progress import progress
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
    subject_dirs: Sequence[str | Path], out: str | Path, config: PretrainConfig, device: str = "auto"
) -> None:
    """Pretrain on the valid frames of every subject; write the UV generator's weights to ``out``."""
    from posetransfer.synthesize import resolve_device

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
        last = history[-steps:]
        log.info(
            "epoch %d: parts CE %.4f, UV L1 %.4f",
            epoch + 1, np.mean([h["parts"] for h in last]), np.mean([h["uv"] for h in last]),
        )  # fmt: skip
    save_checkpoint(
        Path(out), {"uv_generator": model.state_dict(), "config": asdict(config), "history": history}
    )
    log.info("wrote %s", out)
