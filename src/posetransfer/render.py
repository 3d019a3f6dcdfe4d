"""Inference: a trained model renders frames from any pose labels, in batches (no flow needed).

``load`` rebuilds the renderer from the plain-dict checkpoint (``model.pt``); ``pose_labels`` reads
the 6-channel pose label (skeleton + 3D label) of a subject's caches; ``render`` turns labels into
uint8 RGB frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from posetransfer import cache
from posetransfer.dataset import pose_label, resize_images
from posetransfer.errors import CacheError
from posetransfer.model.networks import body_iuv_tensors
from posetransfer.training import Renderer, TrainConfig


def load(model_path: str | Path, device: str = "cpu", compile: bool | str = False) -> tuple[Renderer, dict]:
    """The trained renderer, ready for inference (:func:`prepare`), and the checkpoint's ``meta``."""
    state = read_model(model_path)
    config = TrainConfig(**state["config"])
    models = state["models"]
    if "ema" in models:  # the moving average of the weights renders, not the last step's
        weights = {k.removeprefix("module."): v for k, v in models["ema"].items() if k.startswith("module.")}
    else:
        weights = models["renderer"]
    resolution = int(state["meta"]["resolution"])
    if config.variant == "pose_to_image":
        atlas, background = np.zeros((24, 2, 2, 3), np.uint8), torch.zeros(3, resolution, resolution)
    else:
        size = weights["texture.texture"].shape[-1]
        atlas, background = np.zeros((24, size, size, 3), np.uint8), torch.zeros(3, resolution, resolution)
    renderer = Renderer(config, atlas, background)
    try:
        renderer.load_state_dict(weights)
    except RuntimeError as exc:
        problem = f"the weights do not fit the model its config describes ({str(exc).splitlines()[0]})"
        raise CacheError(problem, model_path) from exc
    return prepare(renderer, device, compile=compile), state["meta"]


def read_model(model_path: str | Path) -> dict:
    """A finished model's checkpoint, checked: anything else is one line naming the file.

    Cheap enough to run before minutes of preprocessing (``posetransfer transfer``).
    """
    path = Path(model_path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors alike: it is not a model
        problem = f"not a posetransfer model: torch cannot read it ({type(exc).__name__})"
        raise CacheError(problem, path) from exc
    parts = ("models", "config", "step")
    if not isinstance(state, dict) or not all(key in state for key in parts):
        found = ", ".join(sorted(map(str, state))[:6]) if isinstance(state, dict) else type(state).__name__
        raise CacheError(
            f"not a posetransfer model: a torch file without a trained renderer (it holds {found});"
            " use the model.pt that `posetransfer train` writes",
            path,
        )
    if "meta" not in state:
        raise CacheError(
            f"a checkpoint saved during training (step {state['step']}), not a finished model: training"
            " stopped before its end; run it again to finish (it resumes), then use its model.pt",
            path,
        )
    try:
        TrainConfig(**state["config"])
    except TypeError as exc:
        raise CacheError(f"a model of another posetransfer version ({exc})", path) from exc
    return state


def prepare(
    renderer: Renderer, device: str = "cpu", fast: bool | None = None, compile: bool | str = False
) -> Renderer:
    """The renderer in eval mode on ``device``, set up for :func:`render`.

    ``fast`` (default: on CUDA): channels_last weights, for bf16 autocast in :func:`render`.
    ``compile``: ``torch.compile`` it (``transfer.compile``); True is mode "reduce-overhead" (CUDA
    graphs: batch 1 is bound by kernel launches), a string names another mode ("default",
    "max-autotune"). Compiling takes a minute or more before the first frame.
    """
    renderer = renderer.to(device).eval()
    if _is_fast(device, fast):
        renderer.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolutions once
    if compile:
        mode = "reduce-overhead" if compile is True else compile
        renderer = torch.compile(renderer, mode=None if mode == "default" else mode, dynamic=False)
    return renderer


def pose_labels(subject_dir: str | Path, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, R, R, 6) float32 pose labels in [-1, 1] and the valid flags, from a subject's caches."""
    subject_dir = Path(subject_dir)
    with cache.open_cache(subject_dir / "pose2d.h5", "pose2d") as pose:
        skeleton, valid = pose.read("skeleton"), pose.read("valid")
    with cache.open_cache(subject_dir / "labels3d.h5", "labels3d") as labels:
        laplacian, fitted = labels.read("laplacian"), labels.read("fitted")
    label = pose_label(skeleton, laplacian, resolution)
    return label, valid & fitted


def body_iuv(labels: cache.Cache, resolution: int, frames: slice | np.ndarray = slice(None)) -> np.ndarray:
    """The fitted body's IUV images of ``frames`` (N, R, R, 3) uint8 from an open labels3d cache,
    at the model's resolution, for the body prior; only those frames are read."""
    return resize_images(labels.read("iuv", frames), resolution, nearest=True)


@torch.no_grad()
def render(
    renderer: Renderer,
    labels: np.ndarray,
    batch: int = 8,
    device: str = "cpu",
    background: np.ndarray | None = None,
    body: np.ndarray | None = None,
    fast: bool | None = None,
) -> np.ndarray:
    """Render (N, R, R, 6) pose labels to (N, R, R, 3) uint8 frames, ``batch`` at a time.

    ``fast`` (default: on CUDA): bf16 autocast and channels_last inputs, for a renderer from
    :func:`prepare`; off, the renderer runs in float32 as trained (the CPU's results are exact).

    ``background``: (1 or N, R, R, 3) uint8 images the person is rendered over instead of the
    model's learned background (Fig. 13); not for ``pose_to_image``, which has none.
    ``body``: (N, R, R, 3) uint8 IUV images of the fitted body in the same poses (:func:`body_iuv`),
    needed by models trained with ``model.uv_input: pose+body_iuv``.
    """
    if getattr(renderer, "needs_body", False) and body is None:
        raise ValueError("this model starts from the body's IUV (model.uv_input pose+body_iuv): pass body")
    if labels.ndim != 4 or labels.shape[-1] != 6:
        raise ValueError(f"pose labels must be (N, H, W, 6), got {labels.shape}")
    if background is not None and len(background) not in (1, len(labels)):
        raise ValueError(f"background must hold 1 or {len(labels)} images, got {len(background)}")
    fast = _is_fast(device, fast)
    compiled = hasattr(renderer, "_orig_mod")  # torch.compile's wrapper
    frames = []
    for start in range(0, len(labels), batch):
        stop = min(start + batch, len(labels))
        chunk = torch.as_tensor(labels[start:stop], device=device).permute(0, 3, 1, 2)
        # NHWC labels permuted are channels_last already; the CPU path keeps today's NCHW copy.
        chunk = chunk if fast else chunk.contiguous()
        backdrop = None
        if background is not None:
            backdrop = background if len(background) == 1 else background[start:stop]
            backdrop = torch.as_tensor(backdrop, device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        iuv = body_iuv_tensors(body[start:stop], device) if body is not None else None
        if compiled:  # one shape for every call: the last, shorter batch does not recompile
            chunk, backdrop, iuv = _padded(batch, chunk, backdrop, iuv)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast):
            images = renderer(chunk, background=backdrop, body=iuv)["image"]
        frames.append(_to_uint8(images[: stop - start].float()))
    return np.concatenate(frames)


def _is_fast(device: str, fast: bool | None) -> bool:
    """bf16 and channels_last: by default on CUDA only (the CPU keeps fp32 results)."""
    return torch.device(device).type == "cuda" if fast is None else fast


def _padded(
    size: int, chunk: torch.Tensor, backdrop: torch.Tensor | None, iuv: tuple[torch.Tensor, ...] | None
):
    """The batch's tensors filled up to ``size`` frames by repeating the last one."""

    def pad(tensor: torch.Tensor) -> torch.Tensor:
        missing = size - len(tensor)
        return torch.cat([tensor, tensor[-1:].expand(missing, *tensor.shape[1:])]) if missing > 0 else tensor

    if backdrop is not None and len(backdrop) > 1:
        backdrop = pad(backdrop)
    if iuv is not None:
        iuv = (pad(iuv[0]), pad(iuv[1]))
    return pad(chunk), backdrop, iuv


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, converted on the device, one copy to the host."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
