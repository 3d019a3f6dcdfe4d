"""Video in and out through PyAV (FFmpeg): any common container and codec in, H.264 MP4 out."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from posetransfer.errors import VideoError

# FFmpeg demuxers of single images (a PNG renamed .mp4 opens as a one-frame "video").
STILL_IMAGE_FORMATS = ("image2", "image2pipe")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream."""

    path: Path
    width: int  # after the rotation the container asks for, i.e. as a viewer shows it
    height: int
    fps: float
    codec: str
    container_frames: int  # 0 where the container does not record it (e.g. webm)
    rotation: int  # degrees the decoded frames are rotated by to display upright


def probe(path: str | Path) -> VideoInfo:
    """Open ``path``, decode its first frame and describe the video; problems are one line."""
    path = Path(path)
    if not path.is_file():
        raise VideoError("video file not found", path)
    if path.stat().st_size == 0:
        raise VideoError("video file is empty (0 bytes)", path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        if container.format.name in STILL_IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            codec = stream.codec_context.name.upper()
            raise VideoError(f"a still image ({codec}), not a video; give a video file", path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoError("video stream has no frame rate", path)
        first = next(_decode(container, stream, path), None)
        if first is None:
            raise VideoError("video has no decodable frames", path)
        rotation = _rotation(first)
        height, width = _upright(first.to_ndarray(format="rgb24"), rotation).shape[:2]
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=float(rate),
            codec=stream.codec_context.name,
            container_frames=int(stream.frames or 0),
            rotation=rotation,
        )


def frame_times(path: str | Path) -> np.ndarray | None:
    """Presentation time in seconds of every frame, in display order, from the container's packets.

    Read without decoding (fast). None where some packet has no timestamp (some AVI files).
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            stamps = [packet.pts for packet in container.demux(stream) if packet.size]
        except av.error.FFmpegError as exc:
            raise VideoError(f"reading failed ({exc.strerror or exc})", path) from exc
        if not stamps or any(stamp is None for stamp in stamps):
            return None
        return np.sort(np.asarray(stamps, dtype=np.float64)) * float(stream.time_base)


def constant_rate_plan(times: np.ndarray) -> tuple[np.ndarray | None, float]:
    """Which frame to show at each tick of a constant frame rate, for frames shown at ``times``.

    Returns (None, rate) where every frame is within half a frame of its tick, i.e. the video
    has a constant rate (timestamp rounding and jitter allowed); else the source frame nearest
    each tick (frames repeat where the video slowed down, drop where it sped up) and the rate:
    the frame count over the duration, so the length is kept.
    """
    count = len(times)
    duration = float(times[-1] - times[0]) if count > 1 else 0.0
    if count < 2 or duration <= 0:
        return None, 0.0
    rate = (count - 1) / duration
    ticks = times[0] + np.arange(count) / rate
    if np.abs(times - ticks).max() <= 0.5 / rate:
        return None, rate
    ticks = times[0] + np.arange(round(duration * rate) + 1) / rate
    after = np.clip(np.searchsorted(times, ticks), 1, count - 1)
    nearest = np.where(ticks - times[after - 1] <= times[after] - ticks, after - 1, after)
    return nearest.astype(np.int64), rate


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield every decodable frame as an (H, W, 3) uint8 RGB array, upright."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        for frame in _decode(container, stream, path):
            yield _upright(frame.to_ndarray(format="rgb24"), _rotation(frame))


def _decode(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        raise VideoError(f"decoding failed ({exc.strerror or exc})", path) from exc


def _rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation in degrees (0, 90, 180, 270) from the display matrix."""
    return round((frame.rotation or 0) / 90.0) * 90 % 360


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise VideoError(f"not a readable video ({reason})", path) from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise VideoError("file has no video stream", path)
    return container.streams.video[0]


def write_h264(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    crf: int = 23,
) -> int:
    """Write RGB frames as an H.264 MP4 (yuv420p, plays in every browser); returns frame count.

    Written to a temporary name and renamed, so a failed write leaves nothing behind. Odd
    sizes are padded by one pixel, since yuv420p needs even width and height.
    """
    with H264Writer(path, fps, crf) as writer:
        for image in frames:
            writer.write(image)
    return writer.count


class H264Writer:
    """:func:`write_h264` frame by frame, for a producer that feeds several videos at once.

    Use as a context manager: the file appears under its name when the block ends without an
    exception (and with at least one frame); otherwise nothing is left behind.
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 23) -> None:
        self.path, self.fps, self.crf, self.count = Path(path), fps, crf, 0
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.mp4")

    def __enter__(self) -> H264Writer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.pix_fmt = "yuv420p"
        # Fixed threads and no timestamps in metadata keep output reproducible.
        self._stream.options = {"crf": str(self.crf), "preset": "medium", "threads": "1"}
        self._stream.codec_context.thread_count = 1
        self._container.metadata["encoder"] = "posetransfer"
        return self

    def write(self, image: np.ndarray) -> None:
        image = _even(np.asarray(image, dtype=np.uint8))
        if self.count == 0:
            self._stream.height, self._stream.width = image.shape[:2]
        self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        self.count += 1

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            try:
                if exc_type is None:
                    if self.count == 0:
                        raise ValueError(f"{self.path}: no frames to write")
                    self._container.mux(self._stream.encode(None))
            finally:
                self._container.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)


def _even(image: np.ndarray) -> np.ndarray:
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return image
