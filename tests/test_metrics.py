"""metrics: SSIM/PSNR (full frame and person box), challenging-pose selection, E_temp, FID."""

import math

import cv2
import numpy as np
import pytest
import torch

from posetransfer import metrics
from posetransfer.errors import ConfigError


def textured(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture in [40, 215], far enough from 0 and 255 that noise is not clipped."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 1, (size // 8, size // 8, 3)).astype(np.float32)
    image = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    image = (image - image.min()) / (image.max() - image.min())
    return np.round(40 + 175 * image).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# SSIM and PSNR
# ----------------------------------------------------------------------------------------------


def test_identical_images_give_ssim_one_and_psnr_inf():
    image = textured()
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.psnr(image, image) == math.inf
    assert metrics.mean_psnr([math.inf, 30.0]) == pytest.approx(65.0)  # inf counted as the 100 dB cap
    with pytest.raises(ValueError, match="NaN"):
        metrics.mean_psnr([30.0, math.nan])
    with pytest.raises(ValueError, match="no values"):
        metrics.mean_psnr([])


def test_gaussian_noise_gives_the_psnr_its_variance_implies():
    image = textured(size=128)
    sigma = 10.0
    noise = np.random.default_rng(1).normal(0, sigma, image.shape)
    noisy = np.clip(np.round(image + noise), 0, 255).astype(np.uint8)
    assert (noisy == 0).sum() + (noisy == 255).sum() == 0  # no clipping: the noise's MSE is all of it
    expected = 10 * math.log10(255**2 / (sigma**2 + 1 / 12))  # + rounding to integers: uniform, var 1/12
    assert metrics.psnr(image, noisy) == pytest.approx(expected, abs=0.1)
    measured_mse = np.mean((image.astype(float) - noisy) ** 2)
    assert metrics.psnr(image, noisy) == pytest.approx(10 * math.log10(255**2 / measured_mse), abs=1e-9)


def test_ssim_drops_for_a_blurred_image():
    image = textured(seed=2)
    detail = np.random.default_rng(3).integers(-30, 31, image.shape)
    sharp = np.clip(image.astype(int) + detail, 0, 255).astype(np.uint8)
    slightly = cv2.GaussianBlur(sharp, (0, 0), 0.7)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    assert metrics.ssim(sharp, blurred) < metrics.ssim(sharp, slightly) < 0.95
    assert metrics.ssim(sharp, blurred) < 0.6


def test_box_variants_ignore_changes_outside_the_box():
    image = textured(size=64)
    changed = image.copy()
    changed[:, 48:] = 255 - changed[:, 48:]  # a change right of the box only
    box = (10.4, 8.0, 40.6, 56.0)  # float, as the detector gives it
    assert metrics.psnr(image, changed) < 20
    assert metrics.ssim(image, changed) < 0.9
    assert metrics.psnr_box(image, changed, box) == math.inf
    assert metrics.ssim_box(image, changed, box) == pytest.approx(1.0)
    assert metrics.crop_box(image, box).shape == (48, 31, 3)  # floor(x0)..ceil(x1) = 10..41
    inside = changed.copy()
    inside[20:30, 20:30] = 0
    assert metrics.psnr_box(image, inside, box) < 30


def test_image_checks_name_the_problem():
    image = textured(size=32)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(image, image[:16])
    with pytest.raises(ValueError, match="uint8"):
        metrics.ssim(image.astype(np.float32), image.astype(np.float32))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim_box(image, image, (0, 0, 8, 8))
    with pytest.raises(ValueError, match="no pixel"):
        metrics.psnr_box(image, image, (40, 0, 50, 10))


# ----------------------------------------------------------------------------------------------
# Challenging poses
# ----------------------------------------------------------------------------------------------

# BODY_25 standing pose, x right, y down, MidHip at the origin, ~190 units tall.
STANDING = np.array(
    [
        (0, -80), (0, -60), (-20, -60), (-25, -30), (-28, 0), (20, -60), (25, -30), (28, 0),
        (0, 0), (-10, 0), (-11, 45), (-12, 90), (10, 0), (11, 45), (12, 90),
        (-4, -84), (4, -84), (-8, -82), (8, -82),
        (16, 96), (20, 95), (11, 94), (-16, 96), (-20, 95), (-11, 94),
    ],
    dtype=np.float64,
)  # fmt: skip


def with_confidence(points: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    return np.concatenate([points, np.full((len(points), 1), confidence)], axis=1).astype(np.float32)


def place(points: np.ndarray, scale: float, x: float, y: float) -> np.ndarray:
    return points * scale + np.array([x, y])


def challenging_case():
    """40 standing training poses (small arm swing, jitter, anywhere in the frame, any size) and a
    validation set: copies of training poses moved and resized (indices 0-5), three different poses
    (6: arms up, 7: T-pose, 8: lying down), a frame without a person (9), one with 3 joints (10)."""
    rng = np.random.default_rng(0)
    train = []
    for _ in range(40):
        pose = STANDING + rng.normal(0, 1.0, STANDING.shape)
        pose[[4, 7], 0] += rng.uniform(-6, 6, 2)  # wrists swing
        train.append(with_confidence(place(pose, rng.uniform(0.8, 1.2), rng.uniform(100, 400), 200)))
    train = np.stack(train)
    val = []
    for index, (scale, x, y) in enumerate([(0.4, 50, 60), (2.5, 300, 20), (1.0, 900, 700)] * 2):
        pose = train[index * 5].copy()
        pose[:, :2] = place(pose[:, :2] - pose[8, :2], scale, x, y)
        if index >= 3:
            pose[[0, 15, 16, 17, 18, 19, 20], 2] = 0.1  # some joints unsure: compared on the rest
        val.append(pose)
    arms_up = STANDING.copy()
    arms_up[[3, 6]] = [(-26, -95), (26, -95)]
    arms_up[[4, 7]] = [(-30, -128), (30, -128)]
    t_pose = STANDING.copy()
    t_pose[[3, 6]] = [(-50, -60), (50, -60)]
    t_pose[[4, 7]] = [(-80, -60), (80, -60)]
    lying = STANDING[:, ::-1] * np.array([1, -1])  # rotated by 90 degrees
    for pose in (arms_up, t_pose, lying):
        val.append(with_confidence(place(pose, 1.0, 250, 200)))
    val.append(np.zeros((25, 3), np.float32))
    few = with_confidence(place(STANDING, 1.0, 250, 200), 0.0)
    few[[0, 1, 8], 2] = 0.9
    val.append(few)
    return train, np.stack(val)


def test_robust_frames_pick_the_different_poses_not_the_moved_or_resized_copies():
    train, val = challenging_case()
    assert set(metrics.robust_frames(train, val, m=3).tolist()) == {6, 7, 8}
    novelty = metrics.pose_novelty(train, val)
    assert np.isnan(novelty[[9, 10]]).all()
    assert novelty[:6].max() < 1e-6  # copies: zero after position and scale normalisation
    assert novelty[6:9].min() > 0.1
    # Without normalising, the far-moved copies would be farthest: the test can tell the difference.
    raw = np.linalg.norm(val[:9, None, :, :2] - train[None, :, :, :2], axis=-1).mean(-1).min(1)
    assert set(np.argsort(-raw)[:3].tolist()) != {6, 7, 8}


def test_robust_frames_never_select_frames_without_a_usable_pose():
    train, val = challenging_case()
    chosen = metrics.robust_frames(train, val, m=20)
    assert len(chosen) == 9 and 9 not in chosen and 10 not in chosen
    assert set(chosen[:3].tolist()) == {6, 7, 8}
    assert chosen.dtype == np.int64
    assert metrics.robust_frames(train, val[9:], m=10).size == 0
    with pytest.raises(ValueError, match=r"\(N, 25, 3\)"):
        metrics.robust_frames(train[:, :18], val)


# ----------------------------------------------------------------------------------------------
# Temporal error
# ----------------------------------------------------------------------------------------------


def test_temporal_error_is_zero_on_a_static_sequence_and_positive_when_flickering():
    still = np.repeat(textured(size=48)[None], 4, axis=0)
    zero_flow = np.zeros((3, 48, 48, 2), np.float32)
    ones = np.ones((3, 48, 48), np.float32)
    assert metrics.temporal_error(still, zero_flow, ones) == 0.0
    flicker = still.copy()
    flicker[1::2] += 30  # every other frame brighter by 30 levels (<= 245: no overflow)
    assert metrics.temporal_error(flicker, zero_flow, ones) == pytest.approx(30 / 255, abs=1e-6)
    assert metrics.temporal_error(flicker, zero_flow, np.zeros_like(ones)) == 0.0
    half = ones.copy()
    half[:, :, 24:] = 0  # Eq. 10 averages over all pixels: half the confidence, half the error
    assert metrics.temporal_error(flicker, zero_flow, half) == pytest.approx(15 / 255, abs=1e-6)


def test_temporal_error_is_near_zero_for_a_translating_texture_with_its_flow():
    base = textured(size=96, seed=4)
    frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(4)])  # 3 px right per frame
    backward = np.zeros((3, 96, 96, 2), np.float32)
    backward[..., 0] = -3.0  # frame t+1 at x is frame t at x - 3
    confidence = np.ones((3, 96, 96), np.float32)
    confidence[:, :, :3] = 0  # the strip entering from the left has no match
    assert metrics.temporal_error(frames, backward, confidence) < 1e-6
    assert metrics.temporal_error(frames, np.zeros_like(backward), confidence) > 0.01
    with pytest.raises(ValueError, match="flow_backward must have shape"):
        metrics.temporal_error(frames, backward[:2], confidence)


# ----------------------------------------------------------------------------------------------
# FID
# ----------------------------------------------------------------------------------------------


def test_fid_is_zero_for_equal_sets_and_grows_with_a_mean_shift():
    features = np.random.default_rng(5).normal(size=(400, 16))
    assert abs(metrics.fid(features, features)) < 1e-6
    shifts = [metrics.fid(features, features + delta) for delta in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([16 * 0.25, 16 * 1.0, 16 * 4.0], rel=1e-6)  # |delta * 1|^2


def test_fid_matches_the_closed_form_for_two_gaussians():
    rng = np.random.default_rng(6)
    mu1, mu2 = np.array([0.0, 1.0, -1.0, 2.0]), np.array([1.0, 1.0, 0.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25, 2.0]), np.array([2.0, 1.0, 1.0, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    a = mu1 + rng.normal(size=(200_000, 4)) * np.sqrt(var1)
    b = mu2 + rng.normal(size=(200_000, 4)) * np.sqrt(var2)
    assert metrics.fid(a, b) == pytest.approx(expected, rel=0.01)
    exact = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert exact == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.fid(a[:1], b)


def test_fid_handles_singular_covariances():
    features = np.random.default_rng(7).normal(size=(5, 32))  # fewer samples than dimensions
    value = metrics.fid(features, features[::-1] + 0.1)
    assert math.isfinite(value) and value == pytest.approx(32 * 0.01, abs=1e-3)


def test_inception_features_from_a_state_dict_file(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    weights, reason = metrics.resolve_inception_weights(str(path))
    assert weights == path and reason is None
    extractor = metrics.InceptionFeatures(weights, batch_size=2)
    images = np.stack([textured(size=64, seed=s) for s in range(3)])
    features = extractor(images)
    assert features.shape == (3, 2048) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])
    np.testing.assert_allclose(extractor(images[:1]), features[:1], rtol=1e-4, atol=1e-5)


def test_inception_weights_absent_wrong_or_of_pytorch_fid_layout(tmp_path):
    assert metrics.resolve_inception_weights(None) == (
        None,
        "FID unavailable: no InceptionV3 weights (config key evaluation.inception_weights)",
    )
    missing = tmp_path / "nowhere" / "inception.pth"
    with pytest.raises(ConfigError) as error:
        metrics.resolve_inception_weights(str(missing))
    assert str(missing) in str(error.value) and "evaluation.inception_weights" in str(error.value)
    assert "\n" not in str(error.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"evaluation\.inception_weights"):
        metrics.InceptionFeatures(garbage)
    for classes in (1008, 1000):  # pytorch-fid's layout, torchvision's
        partial = tmp_path / f"partial{classes}.pth"
        torch.save({"fc.weight": torch.zeros(classes, 2048)}, partial)
        with pytest.raises(ConfigError, match="not an InceptionV3 state dict of torchvision or pytorch-fid"):
            metrics.InceptionFeatures(partial)


def test_inception_features_with_pytorch_fid_weights_equal_pytorch_fids_own(tmp_path, monkeypatch):
    """Given pt_inception-layout weights, the features are those pytorch-fid itself computes."""
    from pytorch_fid import inception as fid_net

    torch.manual_seed(0)
    state = metrics.fid_inception(fid_net._inception_v3(num_classes=1008, aux_logits=False, weights=None)
                                  .state_dict()).state_dict()  # fmt: skip
    state = {**state, "fc.weight": torch.randn(1008, 2048) * 0.01, "fc.bias": torch.zeros(1008)}
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    ours = metrics.InceptionFeatures(path, batch_size=2)
    assert ours.pytorch_fid
    # pytorch-fid would download its weights; here it gets the same file (test only).
    monkeypatch.setattr(fid_net, "load_state_dict_from_url", lambda *args, **kwargs: torch.load(path))
    reference = fid_net.InceptionV3([fid_net.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    images = np.stack([textured(size=64, seed=s) for s in range(2)])
    with torch.no_grad():
        expected = reference(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255)[0][:, :, 0, 0]
    np.testing.assert_allclose(ours(images), expected.double().numpy(), rtol=1e-4, atol=1e-5)


def test_lpips_loads_a_torchvision_alexnet_file_into_the_lpips_packages_network(tmp_path):
    import lpips
    from torchvision.models import alexnet

    torch.manual_seed(0)
    trunk = alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(trunk.state_dict(), path)
    ours = metrics.LPIPSDistance(path)
    # The same trunk put into the lpips package's own network by hand gives the same distances.
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for index, layer in enumerate(trunk.features[:12]):
        for name, value in layer.state_dict().items():
            part = getattr(reference.net, f"slice{metrics.LPIPS_SLICES[index]}")
            getattr(part, str(index)).state_dict()[name].copy_(value)
    a = np.stack([textured(size=64, seed=s) for s in range(3)])
    b = np.roll(a, 5, axis=2)
    distances = ours(a, b)
    with torch.no_grad():
        to_tensor = lambda x: torch.as_tensor(x).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
        expected = reference(to_tensor(a), to_tensor(b)).flatten().numpy()
    np.testing.assert_allclose(distances, expected, rtol=1e-5)
    assert (distances > 0).all() and np.allclose(ours(a, a), 0, atol=1e-6)


def test_lpips_weights_absent_or_wrong(tmp_path):
    path, reason = metrics.resolve_weights_file(
        None, metrics.LPIPS_WEIGHTS_KEY, metrics.LPIPS_UNAVAILABLE, "AlexNet"
    )
    assert (
        path is None
        and reason == "LPIPS unavailable: no AlexNet weights (config key evaluation.lpips_weights)"
    )
    missing = tmp_path / "alexnet.pth"
    with pytest.raises(ConfigError, match=r"AlexNet weights file not found \(evaluation\.lpips_weights\)"):
        metrics.resolve_weights_file(
            str(missing), metrics.LPIPS_WEIGHTS_KEY, metrics.LPIPS_UNAVAILABLE, "AlexNet"
        )
    torch.save({"features.0.weight": torch.zeros(3)}, missing)
    with pytest.raises(ConfigError, match="not a torchvision alexnet state dict"):
        metrics.LPIPSDistance(missing)
