"""Progress bars and logging that read well both in a terminal and in a Snakemake log file."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _LineStream:
    """Turns tqdm's carriage-return redraws into one plain line per update (for log files)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self._stream.write(text + "\n")
            self._stream.flush()

    def flush(self) -> None:
        self._stream.flush()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "frame") -> tqdm:
    """tqdm on a terminal; in a log file, a plain line about every 10 seconds and at the end.

    Returns the bar itself (iterate over it; ``set_postfix`` shows losses).
    """
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=_LineStream(sys.stderr),
        mininterval=10.0,
        ncols=120,
        ascii=True,
    )


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def format_ranges(indices: Sequence[int]) -> str:
    """'3-7, 12' for [3, 4, 5, 6, 7, 12]."""
    parts, start = [], None
    for position, value in enumerate(indices):
        if start is None:
            start = value
        if position + 1 == len(indices) or indices[position + 1] != value + 1:
            parts.append(f"{start}" if start == value else f"{start}-{value}")
            start = None
    return ", ".join(parts)
