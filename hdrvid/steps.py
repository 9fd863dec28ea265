"""Exposure steps between neighbouring frames, measured from their pixels (numpy only): what
`exposure.detect_exposure_pattern` and `exposure.CycleMonitor` read a clip's cycle from.

A step is log2(t_b / t_a) of frames a and b. It is measured from brightness quantiles, which
do not care where pixels are (so motion does not matter), and, for a static pair whose
quantiles compared different content, from its pixels at the same places.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from hdrvid.response import GAMMA

# dense near the top, where the darker frame of a pair still holds its well-exposed values, and
# near the bottom, where a long frame that is nearly all clipped still holds a few
QUANTILES = np.concatenate([np.linspace(0.0005, 0.0095, 19), np.linspace(0.01, 0.9, 90),
                             np.linspace(0.901, 0.999, 99)])
TRUSTED_LOW, TRUSTED_HIGH = 0.06, 0.92  # gamma-domain range trusted in both frames: above noise, below clipping
_BRIGHT = 0.4  # prefer values this high in the brighter frame: the darker one is then above noise


def brightness_quantiles(frame: np.ndarray) -> np.ndarray:
    """Quantiles of max(R', G', B') on a subsampled frame.

    max(R', G', B') scales exactly with exposure^(1/2.2) until it clips at 1, and quantiles do
    not care where pixels are, so comparing quantiles of two frames measures their exposure
    ratio even when the scene moves between them.
    """
    step = max(1, min(frame.shape[:2]) // 180)
    sub = frame[::step, ::step]
    # numpy's "linear" quantiles from one sort: several times faster than np.quantile here
    values = np.sort(np.maximum(np.maximum(sub[..., 0], sub[..., 1]), sub[..., 2]), axis=None)
    position = QUANTILES * (values.size - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, values.size - 1)
    return values[below] + (position - below) * (values[above] - values[below])


def log2_ratio(qa: np.ndarray, qb: np.ndarray) -> float:
    """log2(t_b / t_a) from brightness quantiles of frames a and b; NaN if nothing is usable."""
    valid = (qa > TRUSTED_LOW) & (qa < TRUSTED_HIGH) & (qb > TRUSTED_LOW) & (qb < TRUSTED_HIGH)
    if valid.sum() < 5:  # one frame is mostly clipped or black
        return math.nan
    # noise lifts the darkest quantiles of the shorter frame and biases the ratio low
    bright = valid & (np.maximum(qa, qb) > _BRIGHT)
    if bright.sum() >= 5:
        valid = bright
    return float(np.median(GAMMA * (np.log2(qb[valid]) - np.log2(qa[valid]))))


# a static pair's co-located step replaces its quantile step only when they differ by more than
# this: then the quantiles compared different content; within it both are right to detection's
# rounding, and keeping the quantile step keeps earlier results (docs/performance.md)
DISAGREE_STOPS = 0.75
# static: co-located pixels match with under this share of the spread they have SHIFT pooled
# pixels off (moving footage: about the same spread or less; docs/performance.md)
STATIC_SPREAD, SHIFT = 0.75, 2
_BAND = 0.5  # co-located pixels count where the brighter frame is at least this bright
WEAK_FRACTION = 0.05  # a frame with less of itself in the trusted range measures steps poorly


def _pooled_brightness(frame: np.ndarray) -> np.ndarray:
    """max(R', G', B') at about 180 rows, each the mean of 2×2 samples spread over its block:
    noise averages out, and strided views cost little where a full block mean copies the frame."""
    step = max(1, min(frame.shape[:2]) // 180)
    half = step // 2
    rows, cols = (frame.shape[0] - half) // step, (frame.shape[1] - half) // step
    samples = [frame[dy:dy + rows * step:step, dx:dx + cols * step:step]
               for dy in {0, half} for dx in {0, half}]
    return (sum(samples) / len(samples)).max(axis=-1)


def _colocated_log2_ratio(va: np.ndarray, vb: np.ndarray) -> float:
    """log2(t_b / t_a) from the `_pooled_brightness` ``va``, ``vb`` of frames a and b at the
    same places; NaN unless the pair is
    static: its pixels match each other at their own place far better than a few pixels off.

    Quantiles assume both frames show the same content; a still stack whose registration
    borders differ from frame to frame, or a large static overlay, breaks that, while pixel by
    pixel a static shot is exact. Pixels count where the brighter frame is in its upper range
    (above noise, toe and black floor in the darker one) and neither frame is clipped nearby.
    """
    sign = 1.0
    if va.mean() > vb.mean():  # vb: the brighter frame
        va, vb, sign = vb, va, -1.0
    va, vb = _unclipped(va), _unclipped(vb)
    s = SHIFT
    inner = va[s:-s, s:-s]
    zero, _ = _colocated_steps(inner, vb[s:-s, s:-s])
    h, w = vb.shape
    shifted = [_colocated_steps(inner, vb[s + dy:h - s + dy, s + dx:w - s + dx])[1]
               for dy, dx in ((-s, 0), (s, 0), (0, -s), (0, s))]
    if zero.size < 50 or not np.nanmin(shifted) > 0:
        return math.nan
    spread = float(np.median(np.abs(zero - np.median(zero))))
    if spread >= STATIC_SPREAD * np.nanmin(shifted):
        return math.nan
    return sign * float(np.median(zero))


def _unclipped(v: np.ndarray) -> np.ndarray:
    """``v`` with NaN where it or a neighbour is clipped: video keeps colour at half resolution,
    so a clipped channel bends its neighbours' values by amounts that depend on the exposure."""
    clipped = v >= TRUSTED_HIGH
    near = clipped.copy()
    near[1:] |= clipped[:-1]
    near[:-1] |= clipped[1:]
    near[:, 1:] |= clipped[:, :-1]
    near[:, :-1] |= clipped[:, 1:]
    return np.where(near, np.nan, v)


def _colocated_steps(dark: np.ndarray, bright: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-pixel steps (stops) where both frames are trusted and the brighter one is in its
    upper range, and their spread (median absolute deviation; NaN with under 50 pixels)."""
    band = (dark > TRUSTED_LOW) & (dark < TRUSTED_HIGH) & (bright > _BAND) & (bright < TRUSTED_HIGH)
    steps = GAMMA * (np.log2(bright[band]) - np.log2(dark[band]))
    if steps.size < 50:
        return steps, math.nan
    return steps, float(np.median(np.abs(steps - np.median(steps))))


def pair_steps(frames: Sequence[np.ndarray], quantiles: Sequence[np.ndarray]) -> np.ndarray:
    """log2 exposure ratio of each pair of neighbouring frames: from quantiles, or from
    co-located pixels where a static pair's pixels say something else (see above)."""
    steps = np.array([log2_ratio(a, b) for a, b in itertools.pairwise(quantiles)])
    pooled = [_pooled_brightness(f) for f in frames]
    for i, (a, b) in enumerate(itertools.pairwise(pooled)):
        if math.isnan(steps[i]):
            continue
        colocated = _colocated_log2_ratio(a, b)
        if abs(colocated - steps[i]) > DISAGREE_STOPS:  # False for NaN
            steps[i] = colocated
    return steps


def trusted_fraction(quantiles: np.ndarray) -> float:
    """Share of a frame's pixels between noise and clipping, from its quantiles."""
    def below(value: float) -> float:
        return float(np.interp(value, quantiles, QUANTILES, left=0.0, right=1.0))
    return below(TRUSTED_HIGH) - below(TRUSTED_LOW)


def measure_steps(frames: Sequence[np.ndarray]) -> np.ndarray:
    """log2 exposure ratio between each pair of neighbouring frames (NaN where unmeasurable)."""
    return pair_steps(frames, [brightness_quantiles(f) for f in frames])
