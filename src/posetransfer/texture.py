"""The texture stage: the initial 24-part RGB texture, unwrapped from the frames through the IUV.

Channels 0-2 of the paper's hybrid texture start from this atlas: the count-weighted mean colour
of every body pixel of every fitted frame, splatted into its part's chart; texels never seen are
filled (``texture.fill``: push-pull averaging of nearby seen texels, or the part's mean colour).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer import cache, iuv, preview
from posetransfer.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextureParams:
    """The ``texture`` section of the config."""

    size: int = 200
    fill: str = "push_pull"

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> TextureParams:
        return cls(**section)


# Fitted frames unwrapped at once: a multiple of 32, so the sums equal one call's (iuv.TextureSums).
BLOCK_FRAMES = 64


def run(frames_h5: str | Path, labels3d_h5: str | Path, out: str | Path, png: str | Path,
        params: TextureParams) -> None:  # fmt: skip
    """Unwrap every fitted frame through its IUV into the atlas; write the cache and a PNG.

    Frames and IUV images are read ``BLOCK_FRAMES`` at a time: memory does not grow with the video.
    """
    sums = iuv.TextureSums(params.size)
    with (
        cache.open_cache(frames_h5, "frames") as frames_cache,
        cache.open_cache(labels3d_h5, "labels3d") as labels,
    ):
        keep = np.flatnonzero(labels.read("fitted"))
        source_sha256 = frames_cache.attrs["source_sha256"]
        blocks = range(0, len(keep), BLOCK_FRAMES)
        for start in progress(blocks, len(blocks), "texture", unit="block"):
            rows = keep[start : start + BLOCK_FRAMES]
            parts, u, v = iuv.from_densepose_png(labels.read("iuv", rows))
            sums.add(frames_cache.read("frames", rows), parts, u, v)
    atlas, count = sums.result(params.fill)
    seen = (count > 0).mean()
    log.info(
        "unwrapped %d frames; %.1f%% of texels seen, the rest filled (%s)", len(keep), 100 * seen, params.fill
    )
    with cache.write_cache(out, "texture", asdict(params), source_sha256) as writer:
        writer.array("atlas", np.round(np.clip(atlas, 0, 1) * 255).astype(np.uint8))
        writer.array("count", count.astype(np.int32))
        writer.attrs.update({"size": params.size, "fill": params.fill, "seen_fraction": float(seen)})
    preview.save_png(png, iuv.atlas_image(atlas))
    log.info("wrote %s and %s", out, png)
