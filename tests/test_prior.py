"""The renderer prior: networks shared across people, each person's own texture; resumes; loads."""

import shutil
from dataclasses import replace

import pytest
import torch

from posetransfer import prior, training
from posetransfer.errors import ConfigError
from posetransfer.training import TrainConfig

TINY = TrainConfig(
    resolution=64, epochs=2, warmup_epochs=1, ngf=8, n_blocks=2, ndf=8, texture_size=32,
    perceptual_weights="none", checkpoint_every=2, sample_every=1000, ema=0.9,
)  # fmt: skip


@pytest.fixture(scope="module")
def two_people(synthetic_subject_dir, tmp_path_factory):
    second = tmp_path_factory.mktemp("people") / "second"
    shutil.copytree(synthetic_subject_dir, second)
    return [synthetic_subject_dir, second]


def test_prior_shares_networks_and_keeps_each_persons_texture(two_people, tmp_path):
    prior.run(two_people, tmp_path / "prior.pt", TINY, steps=6, device="cpu")
    made = torch.load(tmp_path / "prior.pt", weights_only=False)
    assert {"uv_generator", "d2g", "discriminator"} <= made.keys()
    assert made["people"] == [str(p) for p in two_people] and made["steps"] == 6
    assert not (tmp_path / ".prior.pt.work").exists()  # work in progress is gone once the prior is written
    assert list((tmp_path / "prior_tensorboard").glob("events.out.tfevents.*"))  # losses per step
    # Each person trained their own texture: the same atlas, other batches, other results.
    trainer = prior.PriorTrainer(
        TINY, [prior.load_person(p, TINY, 0) for p in two_people], 6, tmp_path / "w", "cpu"
    )
    first, second = (texture.texture.detach().clone() for texture in trainer.textures)
    assert torch.equal(first, second)  # before training
    trainer.run(tmp_path / "w" / "last.pt")
    assert not torch.equal(trainer.textures[0].texture, trainer.textures[1].texture)
    assert not torch.equal(trainer.textures[0].texture, first)


def test_killed_prior_resumes_bit_identically(two_people, tmp_path):
    people = [prior.load_person(p, TINY, 0) for p in two_people]
    whole = prior.PriorTrainer(TINY, people, 5, tmp_path / "whole", "cpu")
    whole.run(tmp_path / "whole" / "last.pt")
    killed = prior.PriorTrainer(TINY, people, 5, tmp_path / "killed", "cpu")
    killed.run(tmp_path / "killed" / "last.pt", stop_after=3)  # dies after step 3; saved at 2
    resumed = prior.PriorTrainer(TINY, people, 5, tmp_path / "killed", "cpu")
    resumed.run(tmp_path / "killed" / "last.pt")
    for name, tensor in whole.state()["models"]["renderer"].items():
        assert torch.equal(tensor, resumed.state()["models"]["renderer"][name]), name
    for name, tensor in whole.textures.state_dict().items():
        assert torch.equal(tensor, resumed.textures.state_dict()[name]), name
    # Work left by a prior of other people does not resume this one: it starts over, as training does.
    other = prior.PriorTrainer(TINY, people[::-1], 5, tmp_path / "killed", "cpu")
    other.run(tmp_path / "killed" / "last.pt", stop_after=1)
    assert other.trainer.step == 1


def test_training_starts_from_the_prior(two_people, tmp_path):
    prior.run(two_people, tmp_path / "prior.pt", TINY, steps=4, device="cpu")
    made = torch.load(tmp_path / "prior.pt", weights_only=False)
    trainer = _trainer(two_people[0], tmp_path / "run", TINY)
    fresh_uv = {k: v.clone() for k, v in trainer.renderer.uv_generator.state_dict().items()}
    assert training.apply_prior(trainer, tmp_path / "prior.pt") == ["d2g", "discriminator"]
    for name, module in (("d2g", trainer.renderer.d2g), ("discriminator", trainer.discriminator)):
        ours = module.state_dict()
        assert all(torch.equal(ours[key], value) for key, value in made[name].items()), name
    # The UV generator keeps its start at the fitted body (the prior's measured worse).
    assert all(torch.equal(fresh_uv[k], v) for k, v in trainer.renderer.uv_generator.state_dict().items())
    # Evaluation's average starts from the prior too, not from the random networks.
    averaged = trainer.ema.module.d2g.state_dict()
    assert all(torch.equal(averaged[key], value) for key, value in made["d2g"].items())
    # A variant without D2G-Net takes the discriminator alone.
    no_d2g = _trainer(two_people[0], tmp_path / "no_d2g", TINY.for_variant("no_d2g"))
    assert training.apply_prior(no_d2g, tmp_path / "prior.pt") == ["discriminator"]


def test_a_prior_of_other_sizes_is_one_line(two_people, tmp_path):
    prior.run(two_people, tmp_path / "prior.pt", TINY, steps=2, device="cpu")
    wider = _trainer(two_people[0], tmp_path / "run", replace(TINY, ngf=16))
    with pytest.raises(ConfigError, match=r"pretrain\.renderer: .*prior\.pt.*ngf 8 \(this run: 16\)"):
        training.apply_prior(wider, tmp_path / "prior.pt")


def _trainer(folder, out, config):
    from posetransfer import cache
    from posetransfer.dataset import SubjectData, SubjectPaths

    data = SubjectData(SubjectPaths.in_folder(folder), config.resolution)
    with cache.open_cache(folder / "texture.h5") as texture:
        atlas = texture.read("atlas")
    return training.Trainer(config, data, atlas, out, "cpu")
