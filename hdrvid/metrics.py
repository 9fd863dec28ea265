"""Quality metrics on linear HDR frames (conventions.md §8)."""

from __future__ import annotations

import numpy as np

MU = 5000.0


def tonemap_mulaw(hdr: np.ndarray) -> np.ndarray:
    """μ-law tone curve T(x) = log(1 + μx) / log(1 + μ), μ = 5000, on values clipped to [0, 1]."""
    return np.log1p(MU * np.clip(hdr, 0.0, 1.0)) / np.log1p(MU)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def psnr_t(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR of μ-law tone-mapped frames, peak 1, no renormalisation (the papers' headline)."""
    return _psnr(tonemap_mulaw(pred), tonemap_mulaw(gt))


def psnr_l(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR on linear values clipped to [0, 1], peak 1."""
    return _psnr(np.clip(pred, 0, 1), np.clip(gt, 0, 1))
