"""The frames stage: decode a video, place one square crop around the person, cache the frames.

Two passes over the video: the first finds the person's box on every kept frame (MediaPipe), the
second crops every kept frame with the one box made from their union, resizes it to the
configured resolution and writes it to ``frames.h5``. The crop box is kept, in source pixels, so
outputs can be pasted back into the original video later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posetransfer import cache, preview
from posetransfer.detect import PersonDetector
from posetransfer.errors import NoPersonError, VideoError
from posetransfer.progress import format_ranges, progress
from posetransfer.video import constant_rate_plan, frame_times, probe, read_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FramesParams:
    """The ``frames`` section of the config (see workflow/schemas/config.schema.yaml)."""

    resolution: int = 256
    max_frames: int | None = None
    stride: int = 1
    crop_margin: float = 0.15
    pad_mode: str = "constant"
    detector: str = "mediapipe"
    detect_max_side: int = 640
    min_visibility: float = 0.5

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> FramesParams:
        return cls(**section)


@dataclass(frozen=True)
class CropBox:
    """A square in source pixels; may extend past the image, where it is padded."""

    x0: int
    y0: int
    side: int

    def as_array(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.side], dtype=np.int64)


def select(index: int, kept: int, params: FramesParams) -> bool:
    """Whether source frame ``index`` is kept, given ``kept`` frames were kept before it."""
    return index % params.stride == 0 and (params.max_frames is None or kept < params.max_frames)


def square_crop(boxes: np.ndarray, margin: float) -> CropBox:
    """The square around the union of (N, 4) boxes, grown by ``margin`` x its longer side each way."""
    found = boxes[~np.isnan(boxes).any(axis=1)]
    x0, y0 = found[:, 0].min(), found[:, 1].min()
    x1, y1 = found[:, 2].max(), found[:, 3].max()
    side = float(max(x1 - x0, y1 - y0, 16.0)) * (1.0 + 2.0 * margin)
    side_px = int(np.ceil(side - 1e-3))  # tolerate float error: 200 x 1.2 is 240, not 241
    left = int(np.floor((x0 + x1) / 2.0 - side_px / 2.0))
    top = int(np.floor((y0 + y1) / 2.0 - side_px / 2.0))
    return CropBox(left, top, side_px)


def crop_and_resize(image: np.ndarray, box: CropBox, resolution: int, pad_mode: str) -> np.ndarray:
    """Cut ``box`` out of ``image`` (padding where it leaves the image) and resize it."""
    height, width = image.shape[:2]
    pad_left, pad_top = max(0, -box.x0), max(0, -box.y0)
    pad_right = max(0, box.x0 + box.side - width)
    pad_bottom = max(0, box.y0 + box.side - height)
    inside = image[
        max(0, box.y0) : min(height, box.y0 + box.side), max(0, box.x0) : min(width, box.x0 + box.side)
    ]
    border = cv2.BORDER_REPLICATE if pad_mode == "edge" else cv2.BORDER_CONSTANT
    square = cv2.copyMakeBorder(inside, pad_top, pad_bottom, pad_left, pad_right, border, value=(0, 0, 0))
    interpolation = cv2.INTER_AREA if box.side > resolution else cv2.INTER_CUBIC
    return cv2.resize(square, (resolution, resolution), interpolation=interpolation)


# The frame rates the method is made for (README): One-Euro smoothing, flow and the temporal
# loss assume human motion sampled at video rates.
FPS_RANGE = (5.0, 60.0)
# Training needs two adjacent training frames and one validation frame (the last 10%).
MIN_TRAINING_FRAMES = 3
# Frames searched for a second person (a few: MediaPipe Pose finds one person per image).
SECOND_PERSON_CHECKS = 8


class Selection:
    """The source frames kept, in output order (stride and max_frames applied).

    With a ``plan`` (a variable frame rate resampled to a constant one) output frame k shows
    source frame ``plan[k]``, so source frames may repeat or be skipped; without one, output
    frame k is source frame k and frames are chosen while decoding, as they arrive.
    """

    def __init__(self, params: FramesParams, plan: np.ndarray | None = None) -> None:
        self.params, self.plan = params, plan
        self.outputs: list[int] = []  # output (constant-rate) index of each kept frame
        self.sources: list[int] = []  # source frame of each kept frame
        if plan is not None:
            for index, source in enumerate(plan):
                if select(index, len(self.outputs), params):
                    self.outputs.append(index)
                    self.sources.append(int(source))
            self._wanted = set(self.sources)

    def wants(self, index: int) -> bool:
        """Whether source frame ``index`` is kept (frames must be offered in order, once)."""
        if self.plan is not None:
            return index in self._wanted
        if select(index, len(self.sources), self.params):
            self.outputs.append(index)
            self.sources.append(index)
            return True
        return False


def _kept_frames(video: Path, sources: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(source index, image) of every kept frame in order, a repeated source frame repeated."""
    row = 0
    for index, image in enumerate(read_frames(video)):
        while row < len(sources) and sources[row] == index:
            yield index, image
            row += 1
        if row == len(sources):
            return


def _check_rate(video: Path, fps: float, params: FramesParams) -> None:
    low, high = FPS_RANGE
    # A fast camera may be brought into range with frames.stride; a slow one cannot.
    if fps < low or fps / params.stride > high:
        kept = f"{fps:g} fps" + (f" / stride {params.stride}" if params.stride > 1 else "")
        raise VideoError(
            f"{kept} is outside the {low:g}-{high:g} fps this workflow is made for; if the"
            " container's rate is wrong, re-encode at the true rate (ffmpeg -r); for a fast camera,"
            " keep every Nth frame with frames.stride",
            video,
        )


def _resampling_plan(video: Path, fps: float) -> tuple[np.ndarray | None, float, int, str | None]:
    """A variable-frame-rate video's constant-rate plan (None: constant already), its rate, the
    number of frames with a timestamp, and the warning to give."""
    times = frame_times(video)
    if times is None:
        return None, fps, 0, None
    plan, rate = constant_rate_plan(times)
    if plan is None:
        return None, fps, len(times), None
    intervals = np.diff(times) * 1000
    counts = np.bincount(plan, minlength=len(times))
    warning = (
        f"variable frame rate (frame intervals {intervals.min():.0f}-{intervals.max():.0f} ms):"
        f" resampled to a constant {rate:.3f} fps, {int((counts > 1).sum())} frame(s) repeated,"
        f" {int((counts == 0).sum())} dropped"
    )
    return plan, rate, len(times), warning


def second_person(detector: PersonDetector, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The box of another person than the one in ``box`` (x0, y0, x1, y1), or None.

    MediaPipe Pose finds one person per image, so the one found is hidden (its box, grown by
    10%, painted black) and the image searched again; a find at least half as tall counts.
    """
    x0, y0, x1, y1 = box
    grow_x, grow_y = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    hidden = image.copy()
    top, left = max(0, int(y0 - grow_y)), max(0, int(x0 - grow_x))
    hidden[top : max(0, int(np.ceil(y1 + grow_y))), left : max(0, int(np.ceil(x1 + grow_x)))] = 0
    other = detector.box(hidden)
    if other is None or other[3] - other[1] < 0.5 * (y1 - y0):
        return None
    return other


def run(
    video: str | Path,
    out: str | Path,
    preview_png: str | Path,
    params: FramesParams,
    tiles: int = 12,
    min_frames: int = 1,
) -> None:
    """Decode ``video``, crop it around the person, write ``out`` (frames cache) and a preview.

    ``min_frames``: fewer kept frames are an error (subjects to train need MIN_TRAINING_FRAMES).
    """
    video = Path(video)
    info = probe(video)
    log.info(
        "%s: %dx%d, %.3f fps, codec %s, %s frames in the container",
        video,
        info.width,
        info.height,
        info.fps,
        info.codec,
        info.container_frames or "unknown",
    )
    _check_rate(video, info.fps, params)
    plan, fps, stamped, resampled = _resampling_plan(video, info.fps)
    warnings = []
    if resampled:
        log.warning("%s", resampled)
        warnings.append(resampled)
    source_sha256 = cache.file_sha256(video)

    # Pass 1: the person's box on every kept frame.
    selection = Selection(params, plan)
    found_boxes: dict[int, np.ndarray] = {}
    source_frames = 0
    with PersonDetector(params.min_visibility, params.detect_max_side) as detector:
        bar = progress(read_frames(video), info.container_frames or None, "detect person")
        for index, image in enumerate(bar):
            source_frames += 1
            if selection.wants(index):
                box = detector.box(image)
                found_boxes[index] = np.full(4, np.nan, np.float32) if box is None else box
    if plan is not None and source_frames != stamped:
        raise VideoError(
            f"variable frame rate, and {source_frames} decodable frames but {stamped} timestamps;"
            " re-encode it at a constant frame rate (ffmpeg -i IN -r 25 OUT.mp4)",
            video,
        )
    indices = selection.sources
    if not indices:
        raise NoPersonError("video has no decodable frames", video)
    if len(indices) < min_frames:
        raise VideoError(
            f"too short: {len(indices)} frame(s) kept (stride {params.stride}, max_frames"
            f" {params.max_frames}); training needs at least {min_frames}: two adjacent training"
            " frames and a validation frame (the last 10%), and many more to learn the person",
            video,
        )
    boxes_arr = np.stack([found_boxes[index] for index in indices])
    found = ~np.isnan(boxes_arr).any(axis=1)
    if not found.any():
        raise NoPersonError(f"no person found in any of the {len(indices)} frames", video)
    box = square_crop(boxes_arr, params.crop_margin)
    log.info(
        "person found on %d of %d frames; crop x0=%d y0=%d side=%d px -> %d px",
        found.sum(),
        len(indices),
        box.x0,
        box.y0,
        box.side,
        params.resolution,
    )
    if not found.all():
        missing = f"no person on {(~found).sum()} frames: {format_ranges(np.array(indices)[~found])}"
        log.warning("%s", missing)
        warnings.append(f"frames: {missing} (source frame numbers)")

    # Pass 2: crop, resize and cache; on a few frames, look for a second person.
    size = params.resolution
    checked = [row for row in preview.evenly_spaced(len(indices), SECOND_PERSON_CHECKS) if found[row]]
    others: dict[int, np.ndarray] = {}
    with (
        cache.write_cache(out, "frames", asdict(params), source_sha256) as writer,
        PersonDetector(params.min_visibility, params.detect_max_side, tracking=False) as still,
    ):
        frames = writer.frame_dataset("frames", len(indices), (size, size, 3), np.uint8)
        kept = _kept_frames(video, indices)
        for row, (index, image) in enumerate(progress(kept, len(indices), "crop")):
            if index != indices[row]:
                raise RuntimeError(f"{video}: second decoding pass differs from the first")
            frames[row] = crop_and_resize(image, box, size, params.pad_mode)
            if row in checked and (other := second_person(still, image, boxes_arr[row])) is not None:
                others[index] = other
        if others:
            first, other = next(iter(others.items()))
            crowd = (
                f"a second person is visible on {len(others)} of the {len(checked)} frames checked (source"
                f" frame {first}: x {other[0]:.0f}-{other[2]:.0f}, y {other[1]:.0f}-{other[3]:.0f});"
                " the crop follows one person only: cut the video to one person"
            )
            log.warning("%s", crowd)
            warnings.append(crowd)
        writer.array("source_index", np.asarray(indices, dtype=np.int64))
        writer.array("timestamps", np.asarray(selection.outputs, dtype=np.float64) / fps)
        writer.array("person_box", boxes_arr)
        writer.array("person_found", found)
        writer.attrs.update(
            {
                "fps": fps / params.stride,
                "source_fps": fps,
                "source_frames": source_frames,
                "source_size": np.array([info.width, info.height], dtype=np.int64),
                "source_path": str(video),
                "crop_box": box.as_array(),
                "resolution": size,
            }
        )
        cache.add_warnings(writer.attrs, warnings)
    log.info("wrote %s: %d frames of %dx%d", out, len(indices), size, size)
    write_preview(out, preview_png, video, tiles)


def write_preview(frames_h5: str | Path, png: str | Path, video: str | Path, tiles: int = 12) -> None:
    """A contact sheet: the source frame with the crop box, then evenly spaced cropped frames."""
    with cache.open_cache(frames_h5, "frames") as frames:
        count = len(frames.dataset("frames"))
        picks = preview.evenly_spaced(count, tiles - 1)
        crops = [frames.read("frames", i) for i in picks]
        source_index = frames.read("source_index")
        boxes = frames.read("person_box")
        x0, y0, side = frames.attrs["crop_box"]
    first = next(read_frames(video))
    # Pad the source frame so the whole crop square shows, even where it leaves the image.
    pad_left, pad_top = max(0, -int(x0)), max(0, -int(y0))
    pad_right = max(0, int(x0 + side) - first.shape[1])
    pad_bottom = max(0, int(y0 + side) - first.shape[0])
    overview = cv2.copyMakeBorder(
        first, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_CONSTANT, value=(64, 64, 64)
    )
    shift = np.array([pad_left, pad_top, pad_left, pad_top], dtype=np.float32)
    thickness = max(2, round(max(overview.shape[:2]) / 250))
    for x_a, y_a, x_b, y_b in boxes[~np.isnan(boxes).any(axis=1)] + shift:
        cv2.rectangle(overview, (int(x_a), int(y_a)), (int(x_b), int(y_b)), (255, 210, 0), 1)
    corner = (int(x0) + pad_left, int(y0) + pad_top)
    cv2.rectangle(overview, corner, (corner[0] + int(side), corner[1] + int(side)), (0, 255, 0), thickness)
    labels = ["source: boxes, crop"] + [f"frame {source_index[i]}" for i in picks]
    preview.save_png(png, preview.contact_sheet([overview, *crops], labels, tile=192, columns=4))
