"""Networks of the renderer: shapes, texture mapping (Eq. 1) exactness, pose-input variants, gradient flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posetransfer import texture as texture_stage
from posetransfer.model.losses import lsgan_loss, temporal_loss
from posetransfer.model.networks import (
    Background,
    D2GNet,
    GlobalGenerator,
    HybridTexture,
    MultiscaleDiscriminator,
    PoseToImage,
    UVGenerator,
    body_neighbourhood,
    composite,
    texture_mapping,
)

SMALL = dict(ngf=4, n_blocks=1)  # tiny widths: the tests check wiring, not capacity


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def one_hot_probs(parts: torch.Tensor, num_parts: int = 24) -> torch.Tensor:
    """(N, H, W) part index -> (N, P + 1, H, W) one-hot probabilities."""
    return F.one_hot(parts, num_parts + 1).permute(0, 3, 1, 2).float()


# ---------------------------------------------------------------------------------------------- shapes


def test_uv_generator_shapes_and_uv_range():
    net = UVGenerator(**SMALL)
    logits, uv = net(torch.randn(2, 6, 64, 64))
    assert logits.shape == (2, 25, 64, 64)
    assert uv.shape == (2, 24, 2, 64, 64)
    assert uv.min() >= 0 and uv.max() <= 1


def test_uv_generator_with_body_prior_starts_at_the_body_iuv_and_keeps_gradients():
    from posetransfer.model.networks import body_iuv_tensors

    torch.manual_seed(0)
    iuv = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    iuv[:, 16:48, 20:40] = torch.tensor([7, 51, 204], dtype=torch.uint8)  # part 7, U 0.2, V 0.8
    iuv[1, 40:60, 30:34] = torch.tensor([20, 255, 0], dtype=torch.uint8)
    parts, body_uv = body_iuv_tensors(iuv.numpy())
    net = UVGenerator(**SMALL, body_prior=True)
    pose = torch.randn(2, 6, 64, 64, requires_grad=True)
    logits, uv = net(pose, (parts, body_uv))
    assert logits.shape == (2, 25, 64, 64) and uv.shape == (2, 24, 2, 64, 64)
    assert torch.equal(logits.argmax(1), parts)  # untrained: exactly the body's parts
    assert logits.softmax(1).max(1).values.min() > 0.99
    inside = parts[0] == 7
    assert torch.allclose(uv[0, 6, 0][inside], torch.tensor(0.2), atol=1e-2)
    assert torch.allclose(uv[0, 6, 1][inside], torch.tensor(0.8), atol=1e-2)
    (logits.square().mean() + uv.mean()).backward()
    assert all(p.grad is not None for p in (net.part_head[-1].weight, net.uv_head[-1].weight))
    assert net.part_head[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="pass the body IUV"):
        net(pose)


def test_uv_generator_rejects_bad_inputs():
    net = UVGenerator(**SMALL)
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.randn(1, 6, 72, 64))
    with pytest.raises(ValueError, match="pose must have shape"):
        net(torch.randn(1, 3, 64, 64))


def test_generators_share_one_building_block():
    d2g, baseline = D2GNet(**SMALL), PoseToImage(**SMALL)
    assert isinstance(d2g.generator, GlobalGenerator) and isinstance(baseline.generator, GlobalGenerator)
    image = baseline(torch.randn(2, 6, 64, 64))
    assert image.shape == (2, 3, 64, 64) and image.abs().max() <= 1


@pytest.mark.parametrize(
    ("pose_input", "first_in", "has_pose_encoder"),
    [("intermediate", 18, True), ("input", 24, False), ("none", 18, False)],
)
def test_d2g_pose_input_variants(pose_input, first_in, has_pose_encoder):
    net = D2GNet(pose_input=pose_input, **SMALL).eval()
    trunk = net.generator.trunk
    assert trunk.encoder[1].in_channels == first_in  # [0] is the reflection pad
    assert (trunk.cond_encoder is not None) == has_pose_encoder
    if has_pose_encoder:
        width = trunk.encoder.out_channels
        assert trunk.cond_encoder[1].in_channels == 6
        assert trunk.fuse[0].in_channels == 2 * width and trunk.fuse[0].out_channels == width
    feature, pose = torch.randn(2, 18, 64, 64), torch.randn(2, 6, 64, 64)
    out = net(feature, pose)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    changed = not torch.allclose(out, net(feature, torch.randn(2, 6, 64, 64)))
    assert changed == (pose_input != "none")  # the pose matters exactly when it is an input


def test_d2g_needs_pose_when_conditioned_and_checks_names():
    with pytest.raises(ValueError, match="pose_input"):
        D2GNet(pose_input="middle", **SMALL)
    with pytest.raises(ValueError, match="needs the pose"):
        D2GNet(**SMALL)(torch.randn(1, 18, 64, 64))
    with pytest.raises(ValueError, match="pose must have shape"):
        D2GNet(**SMALL)(torch.randn(1, 18, 64, 64), torch.randn(1, 6, 32, 32))


def test_multiscale_discriminator_outputs_per_scale_features_and_maps():
    disc = MultiscaleDiscriminator(9, ndf=4, n_layers=3, num_D=2)
    outputs = disc(torch.randn(2, 9, 64, 64))
    assert len(outputs) == 2
    assert all(len(scale) == 3 + 2 for scale in outputs)  # n_layers + 1 features, then the map
    assert [o.shape[1] for o in outputs[0]] == [4, 8, 16, 32, 1]
    assert outputs[1][-1].shape[-1] < outputs[0][-1].shape[-1]  # the second scale sees a pooled input
    temporal = MultiscaleDiscriminator(18, ndf=4, num_D=3)  # two frames of (pose, image)
    assert len(temporal(torch.randn(1, 18, 64, 64))) == 3


def test_background_and_composite():
    init = torch.rand(3, 32, 32) * 2 - 1
    background = Background(32, init)
    assert background().shape == (1, 3, 32, 32) and torch.equal(background()[0], init)
    fg = torch.rand(2, 3, 32, 32)
    p0 = torch.zeros(2, 1, 32, 32)
    p0[:, :, :, 16:] = 1
    out = composite(fg, background(), p0)
    assert torch.equal(out[..., :16], fg[..., :16])
    assert torch.equal(out[..., 16:], background().expand(2, -1, -1, -1)[..., 16:])
    half = composite(fg, background(), torch.full_like(p0, 0.5))
    assert torch.allclose(half, (fg + background()) / 2)
    with pytest.raises(ValueError, match="background init"):
        Background(32, torch.zeros(3, 16, 16))
    image = np.full((8, 8, 3), 255, np.uint8)
    assert torch.equal(Background.from_rgb(image)(), torch.ones(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------- texture


def test_from_atlas_maps_rgb_to_minus_one_one_and_zeros_the_rest():
    atlas = np.random.default_rng(0).integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
    texture = HybridTexture.from_atlas(atlas)
    assert texture.texture.shape == (24, 18, 8, 8) and texture.texture.requires_grad
    expected = torch.from_numpy(atlas).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    assert torch.allclose(texture.rgb, expected)
    assert torch.count_nonzero(texture.texture[:, 3:]) == 0
    as_float = HybridTexture.from_atlas(atlas.astype(np.float32) / 255, channels=3)
    assert as_float.texture.shape == (24, 3, 8, 8) and torch.allclose(as_float.texture, expected)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        HybridTexture.from_atlas(atlas.astype(np.float32))


def random_texel_iuv(n: int, h: int, w: int, size: int, seed: int = 0):
    """Part map with background, and UV that land exactly on texel centres (col, row)."""
    g = torch.Generator().manual_seed(seed)
    parts = torch.randint(0, 25, (n, h, w), generator=g)
    col = torch.randint(0, size, (n, h, w), generator=g)
    row = torch.randint(0, size, (n, h, w), generator=g)
    u, v = col / (size - 1), 1 - row / (size - 1)
    uv = torch.rand(n, 24, 2, h, w, generator=g)  # other parts' UV: arbitrary, weighted by 0
    index = (parts - 1).clamp(min=0)[:, None, None].expand(n, 1, 2, h, w)
    uv.scatter_(1, index, torch.stack((u, v), dim=1)[:, None])
    return parts, col, row, uv


def test_texture_mapping_reproduces_texel_centres_exactly():
    size = 8
    texture = torch.randn(24, 5, size, size)
    parts, col, row, uv = random_texel_iuv(2, 16, 16, size)
    out = texture_mapping(texture, one_hot_probs(parts), uv)
    assert out.shape == (2, 5, 16, 16)
    expected = texture[(parts - 1).clamp(min=0), :, row, col].permute(0, 3, 1, 2)
    expected = expected * (parts > 0)[:, None]  # background pixels get no texture
    assert torch.allclose(out, expected, atol=1e-5)


def test_texture_mapping_is_bilinear_on_a_linear_texture_at_arbitrary_uv():
    size = 9
    cols = torch.arange(size).float().view(1, 1, 1, size)
    rows = torch.arange(size).float().view(1, 1, size, 1)
    scale = torch.arange(1, 25).float().view(24, 1, 1, 1)
    texture = torch.cat(
        [(scale * cols / 8).expand(24, 1, size, size), (scale * rows / 8 - 1).expand(24, 1, size, size)], 1
    )
    g = torch.Generator().manual_seed(1)
    parts = torch.randint(1, 25, (1, 12, 12), generator=g)
    uv = torch.rand(1, 24, 2, 12, 12, generator=g)
    out = texture_mapping(texture, one_hot_probs(parts), uv)
    true_uv = uv.gather(1, (parts - 1)[:, None, None].expand(1, 1, 2, 12, 12)).squeeze(1)
    s = parts.float()
    expected_col = s * true_uv[:, 0] * (size - 1) / 8
    expected_row = s * (1 - true_uv[:, 1]) * (size - 1) / 8 - 1
    assert torch.allclose(out[:, 0], expected_col, atol=1e-5)
    assert torch.allclose(out[:, 1], expected_row, atol=1e-5)


def test_texture_mapping_weights_parts_by_probability_and_checkpointing_is_exact():
    texture = torch.randn(24, 3, 8, 8, requires_grad=True)
    logits = torch.randn(2, 25, 16, 16, requires_grad=True)
    uv = torch.rand(2, 24, 2, 16, 16, requires_grad=True)
    plain = texture_mapping(texture, logits.softmax(1), uv)
    grads = torch.autograd.grad(plain.square().sum(), (texture, logits, uv))
    saved = texture_mapping(texture, logits.softmax(1), uv, checkpoint=True)
    assert torch.allclose(plain, saved, atol=1e-6)
    for a, b in zip(grads, torch.autograd.grad(saved.square().sum(), (texture, logits, uv)), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # Eq. 1 is linear in P: the map of a mixture is the mixture of the maps.
    single = [texture_mapping(texture, one_hot_probs(torch.full((2, 16, 16), p)), uv) for p in (3, 7)]
    mixed = (
        one_hot_probs(torch.full((2, 16, 16), 3)) * 0.25 + one_hot_probs(torch.full((2, 16, 16), 7)) * 0.75
    )
    assert torch.allclose(texture_mapping(texture, mixed, uv), 0.25 * single[0] + 0.75 * single[1], atol=1e-6)


def test_texture_mapping_round_trips_the_atlas_convention_of_iuv_unwrap():
    size, h, w = 11, 12, 12
    parts, col, row, uv = random_texel_iuv(1, h, w, size, seed=3)
    u, v = col / (size - 1), 1 - row / (size - 1)
    frame = np.random.default_rng(3).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    # One colour per texel: pixels sharing a texel take the first one's colour.
    flat = ((parts.clamp(min=1) - 1) * size + row) * size + col
    _, first = np.unique(flat.numpy().ravel(), return_index=True)
    lookup = dict(zip(flat.numpy().ravel()[first], frame.reshape(-1, 3)[first], strict=True))
    frame = np.array([lookup[t] for t in flat.numpy().ravel()], np.uint8).reshape(1, h, w, 3)
    atlas, _ = texture_stage.unwrap(frame, parts.numpy(), u.numpy(), v.numpy(), size=size, fill="mean")
    texture = HybridTexture.from_atlas(atlas, channels=3)
    out = texture(one_hot_probs(parts), uv)
    body = (parts > 0)[:, None].expand(1, 3, h, w)
    expected = torch.from_numpy(frame).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(out[body], expected[body], atol=1e-5)


def test_texture_mapping_checks_shapes():
    with pytest.raises(ValueError, match="uv must have shape"):
        texture_mapping(torch.zeros(24, 3, 8, 8), torch.zeros(1, 25, 16, 16), torch.zeros(1, 24, 2, 8, 8))
    with pytest.raises(ValueError, match="part_probs must have shape"):
        texture_mapping(torch.zeros(24, 3, 8, 8), torch.zeros(1, 24, 16, 16), torch.zeros(1, 24, 2, 16, 16))


# ---------------------------------------------------------------------------------------------- gradients


def test_gradient_reaches_every_learnable_part():
    size, res = 8, 32
    uvgen = UVGenerator(ngf=4, n_down=2, n_blocks=1)
    texture = HybridTexture(channels=6, size=size)
    with torch.no_grad():
        texture.texture.normal_()
    d2g = D2GNet(in_channels=6, ngf=4, n_down=2, n_blocks=1)
    background = Background(res, torch.rand(3, res, res) * 2 - 1)
    disc = MultiscaleDiscriminator(9, ndf=4, n_layers=2, num_D=2)

    pose = torch.randn(2, 6, res, res)  # (t-1, t) of one pair
    real = torch.rand(2, 3, res, res) * 2 - 1
    logits, uv = uvgen(pose)
    probs = logits.softmax(1)
    feature = texture(probs, uv)
    p0 = probs[:, :1]
    synth = composite(d2g(feature, pose), background(), p0)
    regular = composite(feature[:, :3], background(), p0)  # Eq. 4: RGB-only branch
    generator_loss = (
        F.mse_loss(synth, real)
        + F.mse_loss(regular, real)
        + lsgan_loss(disc(torch.cat([pose, synth], 1)), True)
        + temporal_loss(synth[1:], synth[:1], torch.zeros(1, 2, res, res), torch.ones(1, 1, res, res))
    )
    discriminator_loss = lsgan_loss(disc(torch.cat([pose, real], 1)), True) + lsgan_loss(
        disc(torch.cat([pose, synth.detach()], 1)), False
    )
    modules = {"uv generator": uvgen, "texture": texture, "d2g": d2g, "background": background}
    for module in modules.values():
        module.zero_grad()
    generator_loss.backward()
    disc.zero_grad()
    discriminator_loss.backward()
    modules["discriminator"] = disc
    for name, module in modules.items():
        for pname, param in module.named_parameters():
            assert param.grad is not None, f"{name}.{pname} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name}.{pname}"
            assert param.grad.abs().sum() > 0, f"{name}.{pname} got a zero gradient"


def test_body_prior_renders_no_person_beyond_its_reach():
    body = torch.zeros(1, 64, 64, dtype=torch.bool)
    body[0, 30:34, 30:34] = True
    near = body_neighbourhood(body, 5)[0, 0]
    assert near[25, 25] and near[38, 38] and not near[24, 30] and not near[30, 39]  # a square of 5 px
    generator = UVGenerator(**SMALL, n_down=2, body_prior=True)
    with torch.no_grad():  # a residual that paints part 5 everywhere
        generator.part_head[-1].bias[5] = 20.0
    parts = body.long() * 7
    logits, _ = generator(torch.zeros(1, 6, 64, 64), (parts, torch.zeros(1, 2, 64, 64)))
    probs = logits.softmax(dim=1)[0]
    assert probs[0, 0, 0] > 0.99  # far from the body (64 px * BODY_REACH = 5 px): background
    assert probs[5, 28, 28] > 0.99  # within the reach the residual may add person (clothes, hair)
