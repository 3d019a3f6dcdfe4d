"""What the benchmarks share: timing one piece of work and printing its rate."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(label: str, frames: int, work: Callable[[], object], width: int = 44) -> float:
    """Run ``work`` once; print and return frames per second."""
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    rate = frames / seconds
    print(f"{label:<{width}} {frames:5d} frames {seconds:8.2f} s {rate:8.1f} frames/s", flush=True)
    return rate
