"""A person-agnostic renderer prior (issue 12): UV generator, D2G-Net and discriminator trained on
many people at once, so that a subject's training starts from networks that have seen bodies,
clothes and poses beyond its own clip.

Each pretraining person keeps their own hybrid texture (from their atlas) and background; the
networks are shared. Steps go round the people in turn, each person's batches in the order of
:func:`training.pair_schedule`, with the losses, warm-up and learning-rate decay of joint training.
A subject's training (``training.run(prior=...)``) then starts D2G-Net and the discriminator from
it (``training.PRIOR_MODULES``) and learns its own UV residuals, texture and background as before.

The prior checkpoint is a plain dict: the networks' state dicts, the config and the people. Work in
progress is checkpointed beside the output, and the same command resumes it after a kill.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posetransfer import cache
from posetransfer.dataset import SubjectData, SubjectPaths
from posetransfer.errors import ConfigError
from posetransfer.model.renderer import Renderer, TrainConfig
from posetransfer.tracking import TrainingLog
from posetransfer.training import (
    Trainer,
    epoch_batches,
    resumable_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

log = logging.getLogger(__name__)

WARMUP_SHARE = 1 / 6  # the share of steps before D2G, GAN and temporal terms (standard: 1 of 6 epochs)


@dataclass(frozen=True)
class Person:
    """One pretraining person: their caches, texture atlas and training pairs."""

    folder: str
    data: SubjectData
    atlas: np.ndarray
    pairs: np.ndarray


def load_person(folder: str | Path, config: TrainConfig, in_memory_mb: float) -> Person:
    data = SubjectData(
        SubjectPaths.in_folder(folder), config.resolution, in_memory_mb, config.training_uv_target
    )
    with cache.open_cache(Path(folder) / "texture.h5", "texture") as texture:
        atlas = texture.read("atlas")
    pairs = data.pairs(data.train_index)
    if len(pairs) == 0:
        raise ConfigError(f"{folder}: no two adjacent valid frames to pretrain the renderer prior on")
    return Person(str(folder), data, atlas, pairs)


class PriorTrainer:
    """A :class:`Trainer` whose renderer swaps in each person's texture and background per step."""

    def __init__(
        self, config: TrainConfig, people: Sequence[Person], steps: int, work: Path, device: str
    ) -> None:
        self.config, self.people, self.steps = config, list(people), steps
        first = people[0]
        schedule = (steps, round(steps * WARMUP_SHARE))
        self.trainer = Trainer(replace(config, ema=0.0), first.data, first.atlas, work, device, schedule)
        renderer = self.trainer.renderer
        others = [Renderer(config, p.atlas, p.data.background_tensor()) for p in people[1:]]
        device = self.trainer.device
        self.textures = nn.ModuleList([renderer.texture, *(r.texture for r in others)]).to(device)
        self.backgrounds = nn.ModuleList([renderer.background, *(r.background for r in others)]).to(device)
        trainer = self.trainer
        params = [*renderer.uv_generator.parameters(), *renderer.d2g.parameters(),
                  *self.textures.parameters(), *self.backgrounds.parameters()]  # fmt: skip
        betas = (config.beta1, 0.999)
        trainer.opt_g = torch.optim.Adam(params, lr=config.learning_rate, betas=betas)

    def wear(self, index: int) -> None:
        """Put person ``index``'s texture and background on the shared renderer."""
        self.trainer.renderer.texture = self.textures[index]
        self.trainer.renderer.background = self.backgrounds[index]

    def state(self) -> dict[str, Any]:
        trainer = self.trainer
        self.wear(0)
        return {
            "step": trainer.step,
            "config": asdict(self.config),
            "people": [p.folder for p in self.people],
            "steps": self.steps,
            "models": {
                "renderer": trainer.renderer.state_dict(),
                "textures": self.textures.state_dict(),
                "backgrounds": self.backgrounds.state_dict(),
                "discriminator": trainer.discriminator.state_dict(),
            },
            "optimizers": {
                "generator": trainer.opt_g.state_dict(),
                "discriminator": trainer.opt_d.state_dict(),
            },
            "rng": rng_state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        trainer = self.trainer
        self.wear(0)
        trainer.renderer.load_state_dict(state["models"]["renderer"])
        self.textures.load_state_dict(state["models"]["textures"])
        self.backgrounds.load_state_dict(state["models"]["backgrounds"])
        trainer.discriminator.load_state_dict(state["models"]["discriminator"])
        trainer.opt_g.load_state_dict(state["optimizers"]["generator"])
        trainer.opt_d.load_state_dict(state["optimizers"]["discriminator"])
        set_rng_state(state["rng"])
        trainer.step = int(state["step"])

    def batches(self) -> Iterator[dict[str, Any]]:
        """The compact batches from the current step on, each with its person's texture and background
        worn (:meth:`wear`) as it is handed out: person ``step % K``, each person's batches continuing
        where their own share of the earlier steps left them."""
        config, count, start = self.config, len(self.people), self.trainer.step
        streams = [
            epoch_batches(
                p.data,
                p.pairs,
                start=len(range(index, start, count)),  # this person's earlier steps
                epochs=None,
                batch=config.batch_pairs,
                seed=config.seed + index,
                workers=0,
            )
            for index, p in enumerate(self.people)
        ]
        for step in range(start, self.steps):
            self.wear(step % count)
            yield next(streams[step % count])

    def run(self, checkpoint: Path, stop_after: int | None = None, board_dir: Path | None = None) -> None:
        """Train to ``steps``, resuming from ``checkpoint`` where it was made with this config and these
        people (else starting over, as training does); ``board_dir``: TensorBoard event files (every
        loss term and the learning rate per step); ``stop_after`` simulates a kill."""
        trainer = self.trainer
        expected = {"config": asdict(self.config), "people": [p.folder for p in self.people]}
        state = resumable_state(checkpoint, expected, discard=checkpoint)
        if state is not None:
            self.restore(state)
            log.info("resumed the renderer prior at step %d", trainer.step)
        with ExitStack() as stack:
            board = stack.enter_context(TrainingLog(board_dir, trainer.step)) if board_dir else None
            trainer.optimise(self.batches(), checkpoint, self.state, stop_after, board, label="prior")

    def prior(self) -> dict[str, Any]:
        """The plain-dict prior: the shared networks and what they were trained with."""
        renderer = self.trainer.renderer
        return {
            "uv_generator": renderer.uv_generator.state_dict(),  # kept for inspection: training starts
            "d2g": renderer.d2g.state_dict(),  # from training.PRIOR_MODULES only
            "discriminator": self.trainer.discriminator.state_dict(),
            "config": asdict(self.config),
            "people": [p.folder for p in self.people],
            "steps": self.steps,
        }


def run(subject_dirs: Sequence[str | Path], out: str | Path, config: TrainConfig, steps: int,
        device: str = "auto", stop_after: int | None = None) -> None:  # fmt: skip
    """Pretrain the renderer prior on every folder of ``subject_dirs`` for ``steps`` steps; write ``out``.

    ``stop_after`` simulates a kill (tests); work in progress lives in ``out``'s folder, in
    ``.{name}.work/``, and is removed once ``out`` is written; TensorBoard event files go to
    ``{stem}_tensorboard/`` beside it.
    """
    from posetransfer.devices import resolve_device

    if config.variant != "full":
        raise ConfigError(
            f"pretrain.renderer: the prior is trained for the full model, not {config.variant!r}"
        )
    if not subject_dirs:
        raise ConfigError("pretrain.renderer: no pretraining people (pretrain.subjects)")
    out = Path(out)
    device = resolve_device(device)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    budget = config.in_memory_mb / len(subject_dirs)  # train.in_memory_mb is for all of them together
    people = [load_person(folder, config, budget) for folder in subject_dirs]
    work = out.parent / f".{out.name}.work"
    prior_trainer = PriorTrainer(config, people, steps, work, device)
    log.info("renderer prior: %d people, %d steps at %d px, on %s", len(people), steps,
             people[0].data.resolution, device)  # fmt: skip
    prior_trainer.run(work / "last.pt", stop_after, board_dir=out.parent / f"{out.stem}_tensorboard")
    if prior_trainer.trainer.step < steps:
        return
    save_checkpoint(out, prior_trainer.prior())
    shutil.rmtree(work, ignore_errors=True)
