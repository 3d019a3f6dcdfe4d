"""Evaluation metrics of the paper's Sec. 4.1: SSIM, PSNR, Robust-SSIM/PSNR frames, E_temp, FID.

- :func:`psnr`, :func:`ssim` and their person-box variants :func:`psnr_box`, :func:`ssim_box` on uint8
  RGB images, through scikit-image (a maintained SSIM rather than a hand-written one);
  :func:`mean_psnr` averages per-frame PSNRs without letting identical frames (PSNR = inf) make it inf;
- :func:`robust_frames` picks the M validation frames whose 2D pose is farthest from every training
  pose ("challenging poses"; Robust-SSIM/PSNR are SSIM/PSNR on those frames), :func:`pose_novelty`
  gives each validation frame's nearest-neighbour distance;
- :func:`temporal_error`: E_temp (Eq. 10) with the flow stage's :func:`posetransfer.flow.warp`;
- :class:`InceptionFeatures` and :func:`fid`: Fréchet Inception Distance from pytorch-fid's (or
  torchvision's) InceptionV3 with weights from a user-given file (:func:`resolve_inception_weights`).

- :class:`LPIPSDistance`: LPIPS v0.1 (AlexNet) from the ``lpips`` package, whose calibrated linear
  layers ship in its wheel; the AlexNet trunk's ImageNet weights come from a user-given file.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from posetransfer.errors import ConfigError
from posetransfer.flow import warp

if TYPE_CHECKING:
    import torch

PSNR_CAP_DB = 100.0  # mean_psnr counts identical frames (inf) as this; 8-bit noise of 1 LSB is 48 dB
SSIM_SIGMA = 1.5  # Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03
SSIM_MIN_SIDE = 11  # the Gaussian window's size in scikit-image for sigma 1.5
INCEPTION_WEIGHTS_KEY = "evaluation.inception_weights"
FID_UNAVAILABLE = f"FID unavailable: no InceptionV3 weights (config key {INCEPTION_WEIGHTS_KEY})"
LPIPS_WEIGHTS_KEY = "evaluation.lpips_weights"
LPIPS_UNAVAILABLE = f"LPIPS unavailable: no AlexNet weights (config key {LPIPS_WEIGHTS_KEY})"
# torchvision's alexnet.features index -> the lpips package's trunk slice holding it.
LPIPS_SLICES = {index: n for n, (a, b) in enumerate(((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), 1)
                for index in range(a, b)}  # fmt: skip
FEATURE_DIM = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Box = Sequence[float]


# ----------------------------------------------------------------------------------------------
# SSIM and PSNR
# ----------------------------------------------------------------------------------------------


def _check_images(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB images, got {a.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 (H, W, 3) images over all pixels and channels, data range 255.

    Identical images give ``math.inf`` (scikit-image would divide by zero and warn); average
    per-frame values with :func:`mean_psnr`, which caps them.
    """
    _check_images(a, b)
    if np.array_equal(a, b):
        return math.inf
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 (H, W, 3) images with Wang et al.'s (2004) settings, the mean over channels.

    scikit-image's ``structural_similarity`` with ``channel_axis=-1``, ``data_range=255``,
    ``gaussian_weights=True``, ``sigma=1.5`` (11x11 window), ``use_sample_covariance=False``,
    K1 0.01, K2 0.03: the published SSIM, not scikit-image's 7x7 uniform-window default, so that
    values compare with papers computing it the reference way. Both sides must be >= 11 px.
    """
    _check_images(a, b)
    if min(a.shape[:2]) < SSIM_MIN_SIDE:
        raise ValueError(f"SSIM needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} px, got {a.shape}")
    value = structural_similarity(
        a,
        b,
        channel_axis=-1,
        data_range=255,
        gaussian_weights=True,
        sigma=SSIM_SIGMA,
        use_sample_covariance=False,
        K1=0.01,
        K2=0.03,
    )
    return float(value)


def crop_box(image: np.ndarray, box: Box) -> np.ndarray:
    """``image`` cropped to the box (x0, y0, x1, y1) in pixels, widened to whole pixels and clipped.

    Float boxes (the detector's) cover every pixel they touch: floor(x0) .. ceil(x1), exclusive.
    """
    if len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box must be finite, got {box!r}")
    height, width = image.shape[:2]
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box!r} holds no pixel of the {width}x{height} image")
    return image[top:bottom, left:right]


def psnr_box(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    """:func:`psnr` on the person's box (x0, y0, x1, y1): the background cannot dilute the score."""
    _check_images(a, b)
    return psnr(crop_box(a, box), crop_box(b, box))


def ssim_box(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    """:func:`ssim` on the person's box (x0, y0, x1, y1); the crop must be >= 11 px each side."""
    _check_images(a, b)
    return ssim(crop_box(a, box), crop_box(b, box))


def mean_psnr(values: Sequence[float] | np.ndarray, cap_db: float = PSNR_CAP_DB) -> float:
    """Mean of per-frame PSNRs with each value capped at ``cap_db`` (100 dB) first.

    Identical frames give PSNR = inf, which would make a plain mean inf; capping counts them as
    "as good as measurable" (8-bit images differing by one level in one value of 512x512x3 score
    ~107 dB, any visible difference far less). Empty input or NaN raise ``ValueError``.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("mean_psnr of no values")
    if np.isnan(array).any():
        raise ValueError("mean_psnr: NaN among the PSNR values")
    return float(np.minimum(array, cap_db).mean())


# ----------------------------------------------------------------------------------------------
# Challenging poses (Robust-SSIM / Robust-PSNR)
# ----------------------------------------------------------------------------------------------


def _check_keypoints(keypoints: np.ndarray, name: str) -> None:
    if keypoints.ndim != 3 or keypoints.shape[1:] != (25, 3):
        raise ValueError(
            f"{name} must have shape (N, 25, 3) BODY_25 (x, y, confidence), got {keypoints.shape}"
        )


def pose_novelty(
    train_keypoints: np.ndarray,
    val_keypoints: np.ndarray,
    min_confidence: float = 0.3,
    min_joints: int = 5,
) -> np.ndarray:
    """Each validation frame's nearest-neighbour distance (M,) to the training poses; NaN: unusable.

    Paper Sec. 4.1 compares 2D keypoints by Euclidean distance; raw pixels would rank a pose that
    is merely further left or nearer the camera as "challenging", though the renderer sees the same
    pose. So each pair (training frame, validation frame) is compared on the joints confident
    (``>= min_confidence``) in both, each pose normalised on exactly those joints: minus their
    centroid, divided by their RMS distance from it (a scale that needs no particular joint, unlike
    the neck-MidHip length, and is the same for both poses of the pair). The distance is the mean
    over shared joints of the per-joint Euclidean distance, in units of that spread. Pairs sharing
    fewer than ``min_joints`` joints, or with a degenerate (zero) spread, are not compared; a
    validation frame with fewer than ``min_joints`` confident joints, or comparable with no training
    frame, has no usable pose and gets NaN.
    """
    _check_keypoints(train_keypoints, "train_keypoints")
    _check_keypoints(val_keypoints, "val_keypoints")
    if min_joints < 3:
        raise ValueError(f"min_joints must be >= 3 (two points only give a direction), got {min_joints}")
    train = train_keypoints[..., :2].astype(np.float64)
    val = val_keypoints[..., :2].astype(np.float64)
    train_ok = (train_keypoints[..., 2] >= min_confidence) & np.isfinite(train).all(-1)
    val_ok = (val_keypoints[..., 2] >= min_confidence) & np.isfinite(val).all(-1)
    train = np.where(train_ok[..., None], train, 0.0)  # NaN coordinates must not leak through weights 0
    val = np.where(val_ok[..., None], val, 0.0)
    novelty = np.full(len(val), np.nan)
    for index in range(len(val)):
        if val_ok[index].sum() < min_joints or len(train) == 0:
            continue
        weight = (train_ok & val_ok[index]).astype(np.float64)  # (N, 25): joints shared with each frame
        count = weight.sum(1)
        usable = count >= min_joints
        if not usable.any():
            continue
        weight, count = weight[usable], count[usable]
        a = _normalise(train[usable], weight, count)
        b = _normalise(np.broadcast_to(val[index], a.shape), weight, count)
        distance = (weight * np.linalg.norm(a - b, axis=-1)).sum(1) / count
        distance = distance[np.isfinite(distance)]
        if distance.size:
            novelty[index] = distance.min()
    return novelty


def _normalise(points: np.ndarray, weight: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(K, 25, 2) points minus the weighted centroid, over the weighted RMS spread (inf/NaN if zero)."""
    centre = (weight[..., None] * points).sum(1) / count[:, None]
    offset = points - centre[:, None]
    spread = np.sqrt((weight * (offset**2).sum(-1)).sum(1) / count)
    with np.errstate(divide="ignore", invalid="ignore"):
        return offset / np.where(spread > 1e-9, spread, np.nan)[:, None, None]


def robust_frames(
    train_keypoints: np.ndarray,
    val_keypoints: np.ndarray,
    m: int = 10,
    min_confidence: float = 0.3,
    min_joints: int = 5,
) -> np.ndarray:
    """Indices into ``val_keypoints`` of the ``m`` most novel poses, most novel first (Sec. 4.1).

    Novelty is :func:`pose_novelty` (nearest-neighbour distance after normalising position and
    scale). Frames without a usable pose are never selected, so fewer than ``m`` come back when
    fewer are usable; ties keep frame order. ``min_confidence`` 0.3 is the pose2d stage's default.
    """
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    novelty = pose_novelty(train_keypoints, val_keypoints, min_confidence, min_joints)
    usable = np.flatnonzero(~np.isnan(novelty))
    order = usable[np.argsort(-novelty[usable], kind="stable")]
    return order[:m].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Temporal error (Eq. 10)
# ----------------------------------------------------------------------------------------------


def temporal_error(frames: np.ndarray, flow_backward: np.ndarray, confidence: np.ndarray) -> float:
    """E_temp (Eq. 10): ``1 / ((T-1) D) sum_t sum_k c_k |I_t - warp(I_{t-1}, b_{t-1})|(k)``.

    ``frames`` (T, H, W, 3) uint8 are the generated frames; ``flow_backward`` (T-1, H, W, 2) and
    ``confidence`` (T-1, H, W) come from the flow stage on the *real* frames: ``flow_backward[i]``
    is the flow from frame i+1 to frame i in pixels (x, y), so :func:`posetransfer.flow.warp` of
    frame i by it is frame i+1's view. Colours are scaled to [0, 1] and the absolute difference is
    averaged over RGB, as in the training loss (Eq. 5). Like Eq. 10 the weighted differences are
    averaged over all D = H x W pixels, not divided by the sum of confidences: unconfident pixels
    count as zero error. The paper does not state the scale of its 0.42; this is on [0, 1].
    Warping is done in float, so sub-pixel flow does not add rounding error.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    count, height, width = frames.shape[:3]
    if count < 2:
        raise ValueError(f"temporal error needs at least 2 frames, got {count}")
    if flow_backward.shape != (count - 1, height, width, 2):
        raise ValueError(
            f"flow_backward must have shape {(count - 1, height, width, 2)}, got {flow_backward.shape}"
        )
    if confidence.shape != (count - 1, height, width):
        raise ValueError(f"confidence must have shape {(count - 1, height, width)}, got {confidence.shape}")
    total = 0.0
    for index in range(count - 1):
        previous = frames[index].astype(np.float32) / 255.0
        current = frames[index + 1].astype(np.float32) / 255.0
        warped = warp(previous, flow_backward[index].astype(np.float32))
        difference = np.abs(current - warped).mean(-1, dtype=np.float64)
        total += float((confidence[index] * difference).mean(dtype=np.float64))
    return total / (count - 1)


# ----------------------------------------------------------------------------------------------
# FID
# ----------------------------------------------------------------------------------------------


def resolve_inception_weights(path: str | Path | None) -> tuple[Path | None, str | None]:
    """The ``evaluation.inception_weights`` setting as ``(path, None)`` or ``(None, reason)``.

    ``None`` (or the string ``none``) means FID is reported as unavailable with the reason
    :data:`FID_UNAVAILABLE`; any other value must name an existing file, else a one-line
    ``ConfigError`` naming the file and the key. Nothing is ever downloaded.
    """
    return resolve_weights_file(path, INCEPTION_WEIGHTS_KEY, FID_UNAVAILABLE, "InceptionV3")


def fid_inception(state: Mapping) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (its FIDInception blocks, 1008 classes) holding ``state``."""
    import torch
    from pytorch_fid import inception as fid_net

    model = fid_net._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    model.Mixed_5b = fid_net.FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = fid_net.FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = fid_net.FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = fid_net.FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = fid_net.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = fid_net.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = fid_net.FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = fid_net.FIDInceptionE_1(1280)
    model.Mixed_7c = fid_net.FIDInceptionE_2(2048)
    model.load_state_dict(state)
    model.transform_input = False
    model.fc = torch.nn.Identity()  # what is left is pool3: pytorch-fid's 2048-d features
    return model


class InceptionFeatures:
    """2048-d pool3 features of InceptionV3, for FID (Heusel et al. 2017); nothing is downloaded.

    Two weight files are accepted, told apart by their classifier's size:

    - pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (1008 classes): the network is
      pytorch-fid's own (torchvision's InceptionV3 with its FIDInception blocks, built from the
      ``pytorch-fid`` package), input as pytorch-fid feeds it (bilinear 299 px, [-1, 1]), so FIDs
      are comparable with published ones;
    - torchvision's ``inception_v3_google-0cc3c7bd.pth`` (1000 classes): torchvision's network,
      ImageNet-normalised input (``transform_input``); FIDs by the same procedure but not
      comparable with published numbers.
    """

    def __init__(self, weights_path: str | Path, device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from torchvision.models import inception_v3

        from posetransfer.devices import resolve_device

        path = Path(weights_path)
        if not path.is_file():
            raise ConfigError(f"InceptionV3 weights file not found ({INCEPTION_WEIGHTS_KEY})", path)
        state = _load_state_dict(path, INCEPTION_WEIGHTS_KEY)
        fc = state.get("fc.weight")
        self.pytorch_fid = fc is not None and tuple(fc.shape) == (1008, FEATURE_DIM)
        try:
            if self.pytorch_fid:
                model = fid_inception(state)
            else:
                with torch.device("meta"):  # no time spent initialising weights that are overwritten
                    model = inception_v3(
                        weights=None, aux_logits=True, init_weights=False, transform_input=True
                    )
                model.load_state_dict(state, assign=True)
                model.fc = torch.nn.Identity()
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or ["mismatch"])[0]
            raise ConfigError(
                "is not an InceptionV3 state dict of torchvision or pytorch-fid"
                f" ({INCEPTION_WEIGHTS_KEY}): {first}",
                path,
            ) from exc
        self.device = torch.device(resolve_device(device))
        self.model = model.eval().to(self.device)
        self.batch_size = batch_size
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _prepare(self, images: np.ndarray) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).float() / 255.0
        batch = F.interpolate(batch, size=(299, 299), mode="bilinear", align_corners=False)
        if self.pytorch_fid:
            return 2 * batch - 1
        return (batch - self._mean) / self._std

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, 2048) float64 features of uint8 (N, H, W, 3) RGB images."""
        import torch

        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        out = np.empty((len(images), FEATURE_DIM), np.float64)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = self._prepare(images[start : start + self.batch_size])
                out[start : start + len(chunk)] = self.model(chunk).double().cpu().numpy()
        return out


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, pytorch-fid's numerics.

    ``scipy.linalg.sqrtm``; if the product is singular enough for a non-finite root, ``eps`` is
    added to both diagonals; an imaginary part from round-off is dropped, a large one (> 1e-3 on
    the diagonal) raises ``ValueError`` as in pytorch-fid.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"mean and covariance shapes disagree: {mu1.shape}, {mu2.shape}, {sigma1.shape}, {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(dim) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary component ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D), (K, D); N, K >= 2.

    Covariances are unbiased (``np.cov``), as in pytorch-fid. With fewer samples than dimensions
    (2048 for Inception) the covariances are singular and FID is biased upwards; use hundreds of
    frames or more, and compare FIDs only at equal sample counts.
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"features must be (N, D) with equal D, got {features_a.shape} and {features_b.shape}"
        )
    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {len(features_a)} and {len(features_b)}")
    a, b = features_a.astype(np.float64), features_b.astype(np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


# ----------------------------------------------------------------------------------------------
# LPIPS
# ----------------------------------------------------------------------------------------------


def resolve_weights_file(
    path: str | Path | None, key: str, unavailable: str, network: str
) -> tuple[Path | None, str | None]:
    """A weights setting as ``(path, None)``, or ``(None, reason)`` when unset or ``auto`` finds no file.

    :func:`posetransfer.weights.resolve` does the work (``auto`` looks in torch.hub's checkpoints
    folder); a named file that is missing is a one-line ``ConfigError``.
    """
    from posetransfer import weights

    resolved, why = weights.resolve(path, weights.for_key(key).name)
    return resolved, None if resolved is not None else (f"{unavailable}: {why}" if why else unavailable)


def _load_state_dict(path: Path, key: str) -> Mapping:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot be read as a state dict ({key}): {first}", path) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ConfigError(f"is not a state dict ({key})", path)
    return state


class LPIPSDistance:
    """LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018), as the ``lpips`` package computes it.

    The package's calibrated linear layers (``weights/v0.1/alex.pth``) ship in its wheel; the
    trunk is torchvision's AlexNet with the user's ImageNet weights (torchvision's
    ``alexnet-owt-7be5be79.pth``), loaded strictly into the package's network, so the distances are
    the package's own. Input: uint8 (N, H, W, 3) RGB pairs; output: one distance per pair.
    """

    def __init__(self, weights_path: str | Path, device: str = "cpu") -> None:
        import warnings

        import lpips

        from posetransfer.devices import resolve_device

        path = Path(weights_path)
        if not path.is_file():
            raise ConfigError(f"AlexNet weights file not found ({LPIPS_WEIGHTS_KEY})", path)
        state = _load_state_dict(path, LPIPS_WEIGHTS_KEY)
        trunk = {}
        for name, value in state.items():
            if name.startswith("features."):
                index, parameter = name[len("features.") :].split(".", 1)
                if int(index) in LPIPS_SLICES:
                    trunk[f"slice{LPIPS_SLICES[int(index)]}.{index}.{parameter}"] = value
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
        try:
            model.net.load_state_dict(trunk)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or ["mismatch"])[0]
            raise ConfigError(
                f"is not a torchvision alexnet state dict ({LPIPS_WEIGHTS_KEY}): {first}", path
            ) from exc
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)

    def __call__(self, a: np.ndarray, b: np.ndarray, batch: int = 16) -> np.ndarray:
        import torch

        if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise ValueError(f"LPIPS takes two uint8 (N, H, W, 3) batches, got {a.shape} and {b.shape}")
        to_tensor = lambda x: torch.as_tensor(x, device=self.device).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
        out = []
        with torch.inference_mode():
            for start in range(0, len(a), batch):
                chunk_a, chunk_b = to_tensor(a[start : start + batch]), to_tensor(b[start : start + batch])
                out.append(self.model(chunk_a, chunk_b).flatten().double().cpu().numpy())
        return np.concatenate(out)
