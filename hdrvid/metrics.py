"""Quality metrics on linear HDR frames (docs/conventions.md §8).

Every frame argument is linear RGB on the hdrvid scale: float (H, W, 3), BT.709 primaries,
1.0 = the clipping point of the shortest exposure. Per-frame metrics return one float; the
frame averaging is done by the caller (`hdrvid.evaluate`).

The optional metrics import their packages lazily (``pip install 'hdrvid[metrics]'``):

- PU21-PSNR and ColorVideoVDP: ``cvvdp`` (module ``pycvvdp``, which also needs torchvision);
- HDR-FLIP: ``flip-evaluator`` (module ``flip_evaluator``).

`missing_optional` says why one of them cannot be used. They work on absolute luminance,
``K_ABS`` cd/m² per unit of linear HDR (an hdrvid convention, not from a paper).
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

# the μ-law and PSNR-T are defined in hdrvid.color (numpy and torch side by side)
from hdrvid.color import MU, psnr, psnr_t  # noqa: F401 - metrics of this module
from hdrvid.color import mu_law as tonemap_mulaw
from hdrvid.tonemap import luminance_bt709

K_ABS = 1000.0  # cd/m² per unit of linear HDR, for PU21, HDR-FLIP and ColorVideoVDP
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
PU_PEAK_LUMINANCE = 100.0  # cd/m² mapped to the PSNR peak, as in pycvvdp's PU-PSNR
CVVDP_DISPLAY = "standard_hdr_linear"  # 1500 cd/m² peak, 10 lux, linear BT.709 input
# FLIP's own exposure range is undefined (and the library calls exit()) below this luminance
FLIP_MIN_PEAK = 1e-6
OPTIONAL_MODULES = {"pu21": "pycvvdp", "flip": "flip_evaluator", "cvvdp": "pycvvdp"}


# --- PSNR-L (PSNR and PSNR-T are hdrvid.color's) ---------------------------------------------

def psnr_l(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR-L: PSNR on linear values clipped to [0, 1], peak 1 (dominated by highlights)."""
    return psnr(np.clip(pred, 0, 1), np.clip(gt, 0, 1))


# --- SSIM --------------------------------------------------------------------------------------

@functools.cache
def _ssim_kernel() -> np.ndarray:
    r = SSIM_WINDOW // 2
    g = np.exp(-(np.arange(-r, r + 1, dtype=np.float64) ** 2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _window_mean(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means, only where the 11×11 window lies inside the image.

    (H, W[, C]) float64 -> (H − 10, W − 10[, C]). The separable filter's border extension is
    cropped away, so no padded value ever enters a result.
    """
    g = _ssim_kernel()
    r = SSIM_WINDOW // 2
    blurred = cv2.sepFilter2D(image, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)
    return blurred[r:-r, r:-r]


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) with an 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03.

    Parameters
    ----------
    a, b : ndarray (H, W) or (H, W, C), float, H and W at least 11.
    data_range : the value range L of the data (C1 = (K1·L)², C2 = (K2·L)²).

    Returns
    -------
    float in [−1, 1]: the SSIM map averaged over the valid positions of each channel, then
    over the channels. Border handling: "valid" only — the map is computed at the
    (H − 10) × (W − 10) positions whose whole window lies inside the image, as in the reference
    MATLAB code and in ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``, which crops the same border. Local variances
    use the population (biased) estimate.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ ({a.shape} and {b.shape})")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images of {a.shape[1]}×{a.shape[0]} pixels are smaller than "
                         f"the {SSIM_WINDOW}×{SSIM_WINDOW} window")
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _window_mean(x), _window_mean(y)
    var_x = _window_mean(x * x) - mu_x**2
    var_y = _window_mean(y * y) - mu_y**2
    cov = _window_mean(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
                / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)))
    per_channel = ssim_map.reshape(-1, 1 if x.ndim == 2 else x.shape[2]).mean(axis=0)
    return float(per_channel.mean())


def ssim_t(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM-T (the hdrvid definition): `ssim` of the μ-law mapped frames, data_range 1.

    Inputs (H, W, 3) linear, H and W at least 11. Each RGB channel is scored on its own and the
    three means are averaged. Not comparable with Chen21's 3-D SSIM or skimage's defaults.
    """
    return ssim(tonemap_mulaw(pred), tonemap_mulaw(gt), data_range=1.0)


# --- temporal stability ------------------------------------------------------------------------

def change_difference(a_prev: np.ndarray, a: np.ndarray, b_prev: np.ndarray,
                      b: np.ndarray) -> float:
    """``mean(abs((a − a_prev) − (b − b_prev)))`` over all pixels and channels, in float64."""
    change_a = np.asarray(a, np.float64) - a_prev
    change_b = np.asarray(b, np.float64) - b_prev
    return float(np.mean(np.abs(change_a - change_b)))


def temporal_error_step(pred_prev: np.ndarray, pred: np.ndarray, gt_prev: np.ndarray,
                        gt: np.ndarray) -> float:
    """Temporal error of frame t: how much the frame-to-frame change of the prediction differs
    from that of the truth, in the μ-law domain.

    ``e_t = mean over pixels and channels of |(T(o_t) − T(o_{t−1})) − (T(g_t) − T(g_{t−1}))|``,
    with o = pred, g = gt, T = `tonemap_mulaw`. Inputs (H, W, 3) linear; result in [0, 2],
    0 when the prediction changes exactly as the truth does (lower is better).
    """
    return change_difference(tonemap_mulaw(pred_prev), tonemap_mulaw(pred),
                             tonemap_mulaw(gt_prev), tonemap_mulaw(gt))


def temporal_error(pred_frames: Iterable[np.ndarray], gt_frames: Iterable[np.ndarray]) -> float:
    """Temporal error of a clip (docs/conventions.md §8): the mean of `temporal_error_step` over
    t = 1 … N − 1, i.e. the mean over frame pairs and pixels. Frames are consumed one at a time;
    NaN for clips shorter than two frames.
    """
    steps, prev = [], None
    for pred, gt in zip(pred_frames, gt_frames, strict=True):
        mapped = (tonemap_mulaw(pred), tonemap_mulaw(gt))
        if prev is not None:
            steps.append(change_difference(prev[0], mapped[0], prev[1], mapped[1]))
        prev = mapped
    return float(np.mean(steps)) if steps else math.nan


# --- optional metrics --------------------------------------------------------------------------

def missing_optional(metric: str) -> str | None:
    """None when the optional ``metric`` ("pu21", "flip", "cvvdp") can run, else the reason."""
    module = OPTIONAL_MODULES[metric]
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - broken installs raise more than ImportError
        return f"{module} cannot be imported ({type(exc).__name__}: {exc})"
    return None


@functools.cache
def _pu21():
    from pycvvdp.utils import PU

    return PU(L_min=0.005, L_max=10000, type="banding_glare")


def pu21_encode(luminance: np.ndarray) -> np.ndarray:
    """PU21 (banding_glare) encoding of absolute luminance in cd/m², clipped to 0.005–10,000.

    Uses ``pycvvdp.utils.PU().encode``; returns float64 of the same shape (≈256 at 100 cd/m²).
    """
    return np.asarray(_pu21().encode(np.asarray(luminance, np.float64)), np.float64)


def pu21_psnr(pred: np.ndarray, gt: np.ndarray, k: float = K_ABS) -> float:
    """PU21-PSNR of one frame in dB, on luminance (docs/conventions.md §8).

    ``Y = k · Y709(rgb)`` (cd/m², k = 1000 per unit by default) is PU21-encoded, and
    ``PSNR = 20·log10(PU(100 cd/m²) / RMSE)``, as pycvvdp's ``pu_psnr_y``. pycvvdp pools the
    MSE over a clip; hdrvid averages per-frame PSNRs. Inputs (H, W, 3) linear; needs ``cvvdp``.
    """
    peak = float(pu21_encode(np.float64(PU_PEAK_LUMINANCE)))
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)  # PU21 needs float64
    return psnr(pu21_encode(k * luminance_bt709(pred)), pu21_encode(k * luminance_bt709(gt)),
                peak=peak)


def _flip_input(rgb: np.ndarray, k: float, name: str) -> np.ndarray:
    image = np.asarray(rgb, np.float32) * np.float32(k)
    if not np.isfinite(image).all():
        raise ValueError(f"hdr_flip: {name} has NaN or infinite values")
    return np.ascontiguousarray(np.maximum(image, 0))


def hdr_flip(pred: np.ndarray, gt: np.ndarray, k: float = K_ABS) -> float:
    """Mean HDR-FLIP error of one frame (lower is better), from ``flip-evaluator``.

    ``flip_evaluator.evaluate(k·gt, k·pred, "HDR")`` on linear BT.709 (= linear sRGB) RGB in
    cd/m², float32 (H, W, 3); the package chooses the exposure range from the reference (ACES
    tone mapper, 67 pixels per degree). Negative values are set to 0.

    Raises ValueError when FLIP is undefined: a reference with no light (peak luminance below
    1e-6 cd/m²) or non-finite pixels. The library would terminate the process there.
    """
    reference, test = _flip_input(gt, k, "reference"), _flip_input(pred, k, "prediction")
    if not luminance_bt709(reference).max() >= FLIP_MIN_PEAK:
        raise ValueError("hdr_flip: the reference frame is black, so FLIP's exposure range "
                         "is undefined")
    import flip_evaluator

    _, mean_error, _ = flip_evaluator.evaluate(reference, test, "HDR", applyMagma=False,
                                               computeMeanError=True)
    return float(mean_error)


def cvvdp_jod(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], fps: float,
              k: float = K_ABS, device: str | None = None) -> float:
    """ColorVideoVDP quality of a whole clip in JOD (10 = no visible difference).

    Parameters
    ----------
    pred, gt : sequences of N frames, each (H, W, 3) linear: a (N, H, W, 3) array, a list, or
        any object with ``len`` and indexing that loads frames lazily (frames are fetched one at
        a time, in order, so memory stays flat).
    fps : frame rate; the clip is scored in video mode (temporal channels) when N > 1.
    k : cd/m² per unit; the display model ``standard_hdr_linear`` takes absolute linear
        BT.709 and clips at its 1500 cd/m² peak.
    device : torch device ("cpu", "cuda"); default: CUDA when available.
    """
    import pycvvdp
    import torch

    if len(pred) != len(gt) or len(gt) == 0:
        raise ValueError(f"cvvdp_jod: {len(pred)} and {len(gt)} frames; give two equal, "
                         "non-empty clips")
    metric = pycvvdp.cvvdp(display_name=CVVDP_DISPLAY, quiet=True,
                           device=torch.device(device) if device else None)
    source = _lazy_video_source(pred, gt, fps if len(gt) > 1 else 0, k,
                                metric.display_photometry)
    with torch.inference_mode():
        jod, _ = metric.predict_video_source(source)
    return float(jod)


def _lazy_video_source(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], fps: float,
                       k: float, display):
    """A pycvvdp video source reading frame i of ``pred``/``gt`` only when it is asked for."""
    import torch
    from pycvvdp.video_source import video_source_dm

    height, width = np.shape(gt[0])[:2]

    class LazySource(video_source_dm):
        def __init__(self):
            super().__init__(display_photometry=display)

        def get_video_size(self):
            return height, width, len(gt)

        def get_frames_per_second(self):
            return fps

        def get_test_frame(self, frame, device, colorspace):
            return self._frame(pred[frame], device, colorspace)

        def get_reference_frame(self, frame, device, colorspace):
            return self._frame(gt[frame], device, colorspace)

        def _frame(self, rgb, device, colorspace):
            hwc = torch.from_numpy(np.asarray(rgb, np.float32) * np.float32(k))
            bcfhw = hwc.permute(2, 0, 1)[None, :, None].to(device)
            return self.apply_dm_and_color_transform(bcfhw, colorspace)

    return LazySource()
