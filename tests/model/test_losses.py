"""Losses: LSGAN values, feature matching, temporal loss and warping, VGG weights resolution, Eq. 6."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from posetransfer.errors import ConfigError
from posetransfer.model.losses import (
    VGG19_CACHE_FILE,
    UVLossWeights,
    VGGPerceptualLoss,
    feature_matching_loss,
    lsgan_loss,
    resolve_vgg_weights,
    temporal_loss,
    uv_pretrain_loss,
    warp,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------- GAN


def test_lsgan_loss_on_constant_predictions():
    ones = [
        [torch.randn(2, 4, 8, 8), torch.ones(2, 1, 5, 5)],
        [torch.randn(2, 4, 4, 4), torch.ones(2, 1, 3, 3)],
    ]
    zeros = [torch.zeros(2, 1, 5, 5), torch.zeros(2, 1, 3, 3)]
    assert lsgan_loss(ones, True).item() == 0.0
    assert lsgan_loss(zeros, False).item() == 0.0
    assert lsgan_loss(ones, False).item() == pytest.approx(2.0)  # 1 per scale, summed over scales
    assert lsgan_loss(zeros, True).item() == pytest.approx(2.0)
    halves = [torch.full((1, 1, 4, 4), 0.5)]
    assert lsgan_loss(halves, True).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no discriminator predictions"):
        lsgan_loss([], True)


def test_feature_matching_loss_ignores_the_maps_and_detaches_real():
    real = [[torch.ones(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 1, 3, 3)]]
    fake = [[torch.ones(1, 2, 4, 4, requires_grad=True), torch.ones(1, 1, 3, 3)]]  # maps differ: ignored
    assert feature_matching_loss(fake, real).item() == 0.0
    fake = [[torch.zeros(1, 2, 4, 4, requires_grad=True), torch.ones(1, 1, 3, 3)]]
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(4.0)  # L1 of 1, weight 4 / 1 feature / 1 scale
    loss.backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None


# ---------------------------------------------------------------------------------------------- temporal


def test_warp_with_integer_flow_moves_the_image_by_that_amount():
    image = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0], flow[:, 1] = 2, -1  # out[y, x] = image[y - 1, x + 2]
    out = warp(image, flow)
    assert torch.allclose(out[..., 1:, :-2], image[..., :-1, 2:], atol=1e-6)
    assert torch.allclose(out[..., 0:1, :-2], image[..., 0:1, 2:], atol=1e-6)  # border padding above
    assert torch.allclose(warp(image, torch.zeros_like(flow)), image, atol=1e-6)


def test_temporal_loss_static_flicker_and_confidence():
    frame = torch.rand(1, 3, 16, 16)
    zero_flow, full = torch.zeros(1, 2, 16, 16), torch.ones(1, 1, 16, 16)
    assert temporal_loss(frame, frame.clone(), zero_flow, full).item() == pytest.approx(0.0, abs=1e-7)
    flicker = frame.clone()
    flicker[..., 4:8, 4:8] += 0.5
    loss = temporal_loss(flicker, frame, zero_flow, full)
    assert loss.item() == pytest.approx(0.5 * 16 / 256, rel=1e-5)  # mean over pixels and channels
    none = torch.zeros_like(full)
    assert temporal_loss(flicker, frame, zero_flow, none).item() == 0.0
    masked = full.clone()
    masked[..., 4:8, 4:8] = 0  # no confidence exactly where it flickers
    assert temporal_loss(flicker, frame, zero_flow, masked).item() == pytest.approx(0.0, abs=1e-7)


def test_temporal_loss_follows_the_flow():
    previous = torch.rand(1, 3, 16, 16)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = -3  # current[y, x] = previous[y, x - 3]: the content moved 3 px right
    current = torch.roll(previous, 3, dims=-1)
    confidence = torch.ones(1, 1, 16, 16)
    confidence[..., :3] = 0  # content that entered from the left edge has no source
    assert temporal_loss(current, previous, flow, confidence).item() == pytest.approx(0.0, abs=1e-6)
    assert temporal_loss(current, previous, torch.zeros_like(flow), confidence).item() > 0.01


# ---------------------------------------------------------------------------------------------- VGG


def random_vgg19_features_file(path: Path) -> Path:
    """A torchvision-VGG19-shaped state dict (features only, random) at ``path``."""
    with torch.device("meta"):
        features = torchvision.models.vgg19(weights=None).features
    features = features.to_empty(device="cpu")
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            module.reset_parameters()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_missing_explicit_vgg_weights_is_one_line_naming_file_and_key(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19.pth"
    for call in (lambda: resolve_vgg_weights(str(missing)), lambda: VGGPerceptualLoss(missing)):
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert str(missing) in message and "perceptual.weights" in message and "\n" not in message


def test_unreadable_vgg_weights_is_a_config_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"perceptual\.weights"):
        VGGPerceptualLoss(junk)
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    with pytest.raises(ConfigError, match=r"perceptual\.weights"):
        VGGPerceptualLoss(other)


def test_vgg_loss_runs_from_a_state_dict_file(tmp_path):
    loss = VGGPerceptualLoss(random_vgg19_features_file(tmp_path / "vgg19.pth"))
    assert all(not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training
    a = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    b = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(a, a.detach()).item() == 0.0
    value = loss(a, b)
    assert value.item() > 0
    value.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_resolve_vgg_weights_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_vgg_weights("auto") is None
    cached = tmp_path / "hub" / "checkpoints" / VGG19_CACHE_FILE
    cached.parent.mkdir(parents=True)
    cached.touch()  # existence is all 'auto' checks
    assert resolve_vgg_weights("auto") == cached
    assert resolve_vgg_weights("none") is None and resolve_vgg_weights(None) is None
    assert resolve_vgg_weights(str(cached)) == cached


# ---------------------------------------------------------------------------------------------- Eq. 6


def uv_targets(n: int = 2, h: int = 8, w: int = 8):
    g = torch.Generator().manual_seed(0)
    parts = torch.randint(0, 25, (n, h, w), generator=g)
    parts[0, 0, 0], parts[0, 0, 1] = 0, 5  # at least one background and one body pixel
    uv = torch.rand(n, 24, 2, h, w, generator=g)
    return parts, uv


def test_uv_pretrain_loss_is_zero_for_a_perfect_prediction():
    parts, target_uv = uv_targets()
    logits = torch.nn.functional.one_hot(parts, 25).permute(0, 3, 1, 2).float() * 100
    out = uv_pretrain_loss(logits, target_uv.clone(), parts, target_uv)
    assert out["parts"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["uv"].item() == pytest.approx(0.0, abs=1e-7)


def test_uv_pretrain_loss_counts_uv_only_of_the_true_part_on_body_pixels():
    parts, target_uv = uv_targets()
    logits = torch.zeros(2, 25, 8, 8, requires_grad=True)
    predicted = target_uv.clone()
    body = parts > 0
    index = (parts - 1).clamp(min=0)
    for n, y, x in torch.nonzero(body).tolist():
        predicted[n, index[n, y, x], :, y, x] += 0.1  # the true part is off by 0.1
    for n, y, x in torch.nonzero(~body).tolist():
        predicted[n, :, :, y, x] += 0.7  # errors on the background must not count...
    other = (index + 1) % 24
    for n, y, x in torch.nonzero(body).tolist():
        predicted[n, other[n, y, x], :, y, x] -= 0.3  # ...nor those of other parts
    predicted.requires_grad_()
    true_uv = target_uv.gather(1, index[:, None, None].expand(2, 1, 2, 8, 8)).squeeze(1)
    weights = UVLossWeights(parts=10.0, uv=500.0)
    out = uv_pretrain_loss(logits, predicted, parts, target_uv, weights)
    assert out["uv"].item() == pytest.approx(0.1, rel=1e-4)
    assert out["parts"].item() == pytest.approx(torch.log(torch.tensor(25.0)).item(), rel=1e-5)
    assert out["total"].item() == pytest.approx(10 * out["parts"].item() + 500 * out["uv"].item(), rel=1e-5)
    same = uv_pretrain_loss(logits, predicted, parts, true_uv, weights)  # the (N, 2, H, W) target form
    assert same["uv"].item() == pytest.approx(out["uv"].item())
    out["total"].backward()
    assert logits.grad.abs().sum() > 0 and predicted.grad.abs().sum() > 0


def test_uv_pretrain_loss_without_body_pixels_and_bad_dtype():
    parts = torch.zeros(1, 8, 8, dtype=torch.long)
    out = uv_pretrain_loss(
        torch.zeros(1, 25, 8, 8), torch.rand(1, 24, 2, 8, 8), parts, torch.rand(1, 2, 8, 8)
    )
    assert out["uv"].item() == 0.0
    with pytest.raises(TypeError, match="int64"):
        uv_pretrain_loss(
            torch.zeros(1, 25, 8, 8), torch.rand(1, 24, 2, 8, 8), parts.int(), torch.rand(1, 2, 8, 8)
        )


def test_structure_loss_is_zero_for_identical_images_and_has_gradients_otherwise():
    from posetransfer.model.losses import structure_loss

    torch.manual_seed(0)
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    assert structure_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-5)
    generated = (target + 0.3 * torch.randn_like(target)).clamp(-1, 1).requires_grad_()
    loss = structure_loss(generated, target)
    loss.backward()
    assert 0 < loss.item() < 1 and generated.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="MS-SSIM needs images larger"):
        structure_loss(target[..., :32, :32], target[..., :32, :32])
