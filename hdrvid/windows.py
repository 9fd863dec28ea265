"""Sliding windows of frames around each reference frame (numpy only).

Every input frame gets an output frame. A slot that falls outside the clip is moved by whole
exposure cycles, so each slot keeps the exposure level the network expects (docs/conventions.md §4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def window_indices(center: int, size: int, n_total: int, period: int) -> list[int]:
    """Frame indices of the ``size``-frame window around ``center`` in a clip of ``n_total``.

    Out-of-range slots are shifted by the fewest whole periods that bring them inside:

    >>> window_indices(0, 5, 10, 2)
    [0, 1, 0, 1, 2]
    >>> window_indices(1, 5, 10, 2)
    [1, 0, 1, 2, 3]
    >>> window_indices(9, 5, 10, 2)
    [7, 8, 9, 8, 9]
    >>> window_indices(0, 7, 10, 3)
    [0, 1, 2, 0, 1, 2, 3]
    >>> window_indices(9, 7, 10, 3)
    [6, 7, 8, 9, 7, 8, 9]
    >>> window_indices(0, 3, 10, 2)
    [1, 0, 1]
    """
    if size % 2 == 0 or size < 1:
        raise ValueError(f"window size must be odd, got {size}")
    if n_total < period:
        frames = f"{n_total} frame{'' if n_total == 1 else 's'}"
        raise ValueError(f"a clip of {frames} is shorter than one exposure cycle ({period})")
    if not 0 <= center < n_total:
        raise ValueError(f"center {center} outside a clip of {n_total} frames")
    radius = size // 2
    indices = []
    for j in range(center - radius, center + radius + 1):
        if j < 0:
            j += period * math.ceil(-j / period)
        elif j > n_total - 1:
            j -= period * math.ceil((j - (n_total - 1)) / period)
        indices.append(min(max(j, 0), n_total - 1))  # only reachable when size >> n_total
    return indices


@dataclass
class Window(Generic[T]):
    """The frames a model reads for output frame ``center`` (items in slot order)."""

    center: int
    indices: list[int]
    items: list[T]


def sliding_windows(items: Iterable[T], size: int, period: int) -> Iterator[Window[T]]:
    """Yield one window per input item, in order, holding only ``size + 2·period`` items.

    Windows near the start wait for ``size // 2`` future items; those at the end are emitted
    once the input is exhausted, when the clip length is known.
    """
    radius = size // 2
    keep = size + 2 * period  # every index a window can reach lies in [c - r - P, c + r + P]
    ring: dict[int, T] = {}
    emitted = 0
    count = 0
    for index, item in enumerate(items):
        ring[index] = item
        count = index + 1
        ring.pop(index - keep, None)
        # `period` frames of slack: the start rule can move a slot up to index period - 1
        center = index - radius - period
        if center >= 0:
            yield _window(ring, center, size, count, period, known_end=False)
            emitted = center + 1
    for center in range(emitted, count):
        yield _window(ring, center, size, count, period, known_end=True)


def _window(ring: dict[int, T], center: int, size: int, count: int, period: int,
            known_end: bool) -> Window[T]:
    # before the end is known, pretend the clip is long: only the start edge can shift slots
    n_total = count if known_end else max(count, center + size + period)
    indices = window_indices(center, size, n_total, period)
    return Window(center, indices, [ring[i] for i in indices])


@dataclass(frozen=True)
class Chunk:
    """Output frames ``first`` to ``last`` (exclusive) of one input: a unit of distributed work.

    It decodes ``halo`` frames on either side that it reads but does not emit, so each of its
    windows is the one a single run over the whole video builds.
    """

    input: str
    first: int
    last: int
    halo: int

    @property
    def decode_start(self) -> int:
        return max(0, self.first - self.halo)

    @property
    def decode_stop(self) -> int:
        return self.last + self.halo

    def windows(self, windows: Iterable[Window[T]]) -> Iterator[Window[T]]:
        """The chunk's own windows, numbered as in the whole video, from `sliding_windows`
        over its decoded frames (which start at ``decode_start``).

        Only the clip's own edges shift slots: a window at most ``halo`` frames from a chunk
        edge that is not a clip edge reads halo frames, never a shifted slot.
        """
        offset = self.decode_start
        for window in windows:
            center = window.center + offset
            if self.first <= center < self.last:
                yield Window(center, [i + offset for i in window.indices], window.items)


def plan_chunks(input: str, frame_count: int, period: int, window: int,
                frames_per_chunk: int, start: int = 0) -> list[Chunk]:
    """Split ``frame_count`` frames from frame ``start`` on into chunks whose length is a
    multiple of the exposure cycle; the halo is the window's radius."""
    if frame_count < 1:
        return []
    length = max(period, frames_per_chunk // period * period)
    end = start + frame_count
    return [Chunk(str(input), first, min(first + length, end), halo(window, period))
            for first in range(start, end, length)]


def halo(window: int, period: int) -> int:
    """Frames to decode on either side of a part of a video: the window's radius, and at least
    a cycle's worth less one, so that a part shorter than a cycle still decodes one whole cycle
    (windows are only built over whole cycles)."""
    return max(window // 2, period - 1)
