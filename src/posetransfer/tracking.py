"""Live training curves and samples in TensorBoard: a thin wrapper over ``torch.utils.tensorboard``.

Usage (``tensorboard --logdir results`` then shows every run under ``results/``)::

    with TrainingLog(out_dir / "tensorboard", start_step=step) as board:  # 0, or the checkpoint's step
        for ...:
            board.scalars(step, {"loss/total": 1.2, "loss/l2": 0.3, "train/lr": 2e-4})
            board.image("samples", step, grid)  # (H, W, 3) uint8

Event files are outputs for people, not inputs: nothing reads them back, they may be deleted at any
time, and writing them touches no random number generator, model or checkpoint, so training with
or without them gives the same checkpoints. A resumed run passes the step its checkpoint holds (the
last step done) as ``start_step``: TensorBoard then hides every event the killed run wrote after
that step, so no step appears twice. A fresh run (``start_step`` 0) removes the event files of
an earlier run in the same folder.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import numpy as np

EVENT_FILE_GLOB = "events.out.tfevents.*"
FLUSH_SECONDS = 10  # how stale the live view may be


class TrainingLog:
    """TensorBoard event files for one training run in ``log_dir`` (created if absent).

    - ``scalars(step, {tag: value})``: one scalar per tag at ``step`` (tags such as ``loss/l2``,
      ``train/lr``; a ``/`` groups them in TensorBoard). Non-finite values are written as they are.
    - ``image(tag, step, hwc_uint8)``: an RGB image, (H, W, 3) uint8.
    - ``rate(step)``: steps per second since the previous call (``None`` on the first), for
      ``train/steps_per_second``.
    - ``close()``: flush and close; also on leaving a ``with`` block.
    """

    def __init__(self, log_dir: str | Path, start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if start_step == 0:
            for stale in self.log_dir.glob(EVENT_FILE_GLOB):  # an earlier run of the same output
                stale.unlink()
        # purge_step: TensorBoard drops earlier events at steps >= purge_step (a killed run's tail)
        self._writer = SummaryWriter(str(self.log_dir), purge_step=start_step + 1, flush_secs=FLUSH_SECONDS)
        self._last: tuple[int, float] | None = None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), global_step=step)

    def image(self, tag: str, step: int, hwc_uint8: np.ndarray) -> None:
        if hwc_uint8.dtype != np.uint8 or hwc_uint8.ndim != 3 or hwc_uint8.shape[-1] != 3:
            raise ValueError(
                f"image {tag}: expected (H, W, 3) uint8, got {hwc_uint8.shape} {hwc_uint8.dtype}"
            )
        self._writer.add_image(tag, hwc_uint8, global_step=step, dataformats="HWC")

    def rate(self, step: int) -> float | None:
        """Steps per second since the previous call (wall clock; for people, never for results)."""
        now = time.perf_counter()
        last, self._last = self._last, (step, now)
        if last is None or now <= last[1] or step <= last[0]:
            return None
        return (step - last[0]) / (now - last[1])

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
