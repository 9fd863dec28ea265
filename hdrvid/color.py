"""Colour maths defined once: the models' gamma, the sRGB curve, the μ-law and PSNR-T, and
Y′CbCr -> R′G′B′, each with its numpy form and, where torch code needs it, its torch twin
beside it (``*_torch``). The twins compute the same thing with the same operations, so a value
from one matches the other to float rounding (docs/conventions.md §1, §8).

Imports neither torch nor OpenCV at import time: the CLI and the numpy-only modules load this
module, and ``hdrvid --help`` must not pay for them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

GAMMA = 2.2  # every supported model's transfer curve: a pure 1/2.2 power (conventions §1)
MU = 5000.0  # the μ-law's μ, as in the papers' PSNR-T and losses (conventions §8)
# (Kr, Kb) of the Y′CbCr matrices (ITU-R BT.601, BT.709, BT.2020 non-constant luminance)
MATRIX_COEFFICIENTS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722),
                       "bt2020": (0.2627, 0.0593)}


def luma_weights(matrix: str = "bt601") -> tuple[float, float, float]:
    """The (R, G, B) weights of luma Y′ under a matrix of `MATRIX_COEFFICIENTS`: Kr, Kg, Kb."""
    kr, kb = MATRIX_COEFFICIENTS[matrix]
    # the standards give Kg to 4 decimals; rounding drops the subtraction's float residue
    return kr, round(1 - kr - kb, 6), kb


# --- gamma 2.2 -----------------------------------------------------------------------------------

def linearize_gamma22(ldr: np.ndarray) -> np.ndarray:
    """Gamma-2.2 R'G'B' in [0, 1] to linear (the models' contract)."""
    return np.clip(ldr, 0.0, 1.0) ** GAMMA


def oetf_gamma22(linear: np.ndarray) -> np.ndarray:
    """Linear light to gamma-2.2 R'G'B', clipped to [0, 1]."""
    return np.clip(linear, 0.0, 1.0) ** (1 / GAMMA)


# --- sRGB ----------------------------------------------------------------------------------------

def eotf_srgb(v: np.ndarray) -> np.ndarray:
    """sRGB (IEC 61966-2-1) encoded values to linear."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def eotf_srgb_torch(v: torch.Tensor) -> torch.Tensor:
    """`eotf_srgb` for a tensor already in [0, 1] (the caller clips: decoded R'G'B' is)."""
    import torch

    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


# --- μ-law and PSNR-T ----------------------------------------------------------------------------

def mu_law(x, mu: float = MU) -> np.ndarray:
    """μ-law ``T(x) = log(1 + μx) / log(1 + μ)`` on x clipped to [0, 1] (NaN counts as 0).

    x : any shape (array-like). Returns [0, 1], float32 (float64 for float64 input).
    """
    x = np.asarray(x)
    clipped = np.empty(x.shape, np.float64 if x.dtype == np.float64 else np.float32)
    np.fmax(x, 0, out=clipped)
    np.fmin(clipped, 1, out=clipped)
    return np.clip(np.log1p(mu * clipped) / math.log1p(mu), 0.0, 1.0)


def mu_law_torch(x: torch.Tensor) -> torch.Tensor:
    """`mu_law` (μ = 5000) of a tensor, differentiable: the training losses' curve."""
    return (MU * x.clamp(0, 1)).log1p() / math.log1p(MU)


def inverse_mu_law_torch(tone: torch.Tensor) -> torch.Tensor:
    """The linear value whose `mu_law_torch` is ``tone`` (in [0, 1])."""
    return (tone * math.log1p(MU)).expm1() / MU


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """``10·log10(peak² / MSE(a, b))`` in dB, computed in float64; ``inf`` when a == b."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def psnr_t(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR-T: PSNR of μ-law tone-mapped frames, peak 1, no renormalisation (the papers'
    headline number).

    ``10·log10(1 / MSE(T(clamp(pred, 0, 1)), T(clamp(gt, 0, 1))))``; inputs (H, W, 3) linear.
    """
    return psnr(mu_law(pred), mu_law(gt))


def psnr_t_torch(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """`psnr_t` per sample of a batch (B, ...) -> (B,); an MSE of 0 counts as 1e-10 (100 dB)."""
    mse = (mu_law_torch(pred) - mu_law_torch(truth)).pow(2).flatten(1).mean(1)
    return -10 * mse.clamp_min(1e-10).log10()


# --- Y′CbCr -> R′G′B′ ----------------------------------------------------------------------------

def ycbcr_to_rgb_matrix(bits: int, matrix: str, full_range: bool) -> np.ndarray:
    """3×4 affine matrix from Y'CbCr code values to R'G'B' in [0, 1] (before clipping).

    matrix: a key of `MATRIX_COEFFICIENTS`; full_range: full (JPEG) rather than limited codes.
    """
    kr, kb = MATRIX_COEFFICIENTS[matrix]
    kg = 1 - kr - kb
    if full_range:
        peak = 2**bits - 1
        gain = np.array([1 / peak, 1 / peak, 1 / peak])
        offset = np.array([0.0, -(2 ** (bits - 1)) / peak, -(2 ** (bits - 1)) / peak])
    else:
        scale = 2 ** (bits - 8)
        gain = np.array([1 / 219, 1 / 224, 1 / 224]) / scale
        offset = np.array([-16 / 219, -128 / 224, -128 / 224])
    # R = Y + 2(1-Kr)Cr;  B = Y + 2(1-Kb)Cb;  G = (Y - Kr R - Kb B) / Kg
    to_rgb = np.array([[1, 0, 2 * (1 - kr)],
                       [1, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
                       [1, 2 * (1 - kb), 0]])
    return np.hstack([to_rgb * gain, (to_rgb @ offset)[:, None]]).astype(np.float32)


def ycbcr_to_rgb(ycbcr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Y'CbCr code values (H, W, 3) float32 and a `ycbcr_to_rgb_matrix` -> R'G'B' float32
    (H, W, 3) clipped to [0, 1]. One affine transform per pixel (OpenCV, multi-threaded, faster
    than numpy at HD sizes)."""
    import cv2

    rgb = cv2.transform(ycbcr, matrix)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def ycbcr_to_rgb_torch(ycbcr: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """`ycbcr_to_rgb` for planes (3, H, W) on any device, with the same matrix as a tensor
    -> R'G'B' (3, H, W) clipped to [0, 1]."""
    import torch

    rgb = torch.einsum("ij,jhw->ihw", matrix[:, :3], ycbcr)
    return rgb.add_(matrix[:, 3, None, None]).clamp_(0, 1)
