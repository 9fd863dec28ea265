"""Metrics of docs/conventions.md §8, checked against values computed by hand from the
definitions."""

import math

import numpy as np
import pytest
from conftest import T, requires_optional

from hdrvid import metrics
from hdrvid.metrics import (
    hdr_flip,
    luminance_bt709,
    psnr,
    psnr_l,
    psnr_t,
    pu21_psnr,
    ssim,
    ssim_t,
    temporal_error,
    temporal_error_step,
    tonemap_mulaw,
)

C1, C2 = (0.01 * 1) ** 2, (0.03 * 1) ** 2  # SSIM constants for data_range 1


def constant(value, size=16) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


# --- tone curve and PSNR -----------------------------------------------------------------------

def test_tonemap_mulaw_values():
    x = np.array([0.0, 0.01, 0.5, 1.0, 4.0])
    expected = np.log1p(5000 * np.clip(x, 0, 1)) / np.log1p(5000)
    np.testing.assert_allclose(tonemap_mulaw(x), expected)
    assert tonemap_mulaw(np.array(1.0)) == pytest.approx(1.0)
    assert tonemap_mulaw(np.array(7.0)) == pytest.approx(1.0)  # clamped to [0, 1]


def test_psnr_t_known_value():
    gt = np.full((4, 4, 3), 0.25, np.float32)
    pred = np.full((4, 4, 3), 0.5, np.float32)
    difference = math.log1p(2500) / math.log1p(5000) - math.log1p(1250) / math.log1p(5000)
    assert psnr_t(pred, gt) == pytest.approx(-20 * math.log10(difference))
    assert psnr_t(gt, gt) == math.inf


def test_psnr_l_known_value():
    gt = np.zeros((2, 2, 3))
    assert psnr_l(gt + 0.1, gt) == pytest.approx(20.0)
    assert psnr_l(gt + 5.0, gt + 1.0) == math.inf  # both clip to 1


def test_psnr_t_clips_and_does_not_renormalise():
    gt = constant(0.02)
    # a prediction at half the brightness is compared as it is, not rescaled first
    assert psnr_t(gt / 2, gt) == pytest.approx(-20 * math.log10(T(0.02) - T(0.01)), rel=1e-6)
    assert psnr_t(gt + 3.0, gt + 1.0) == math.inf  # both clip to 1
    assert psnr_t(gt - 1.0, np.zeros_like(gt)) == math.inf  # negative values clip to 0


def test_psnr_t_of_half_float_frames():
    pred, gt = constant(0.5).astype(np.float16), constant(0.25).astype(np.float16)
    assert psnr_t(pred, gt) == pytest.approx(-20 * math.log10(T(0.5) - T(0.25)), rel=1e-6)


def test_psnr_t_mixed_pixels():
    # half the pixels off by T(0.5) - T(0.25), the other half exact: MSE halves (+3.01 dB)
    gt = constant(0.25)
    pred = gt.copy()
    pred[:8] = 0.5
    expected = 10 * math.log10(1 / ((T(0.5) - T(0.25)) ** 2 / 2))
    assert psnr_t(pred, gt) == pytest.approx(expected, rel=1e-6)


def test_psnr_peak():
    assert psnr(np.zeros(4), np.full(4, 2.0), peak=20.0) == pytest.approx(20.0)
    assert psnr(np.ones(4), np.ones(4), peak=3.0) == math.inf


def test_luminance_bt709():
    rgb = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(luminance_bt709(rgb), [0.2126, 0.7152, 0.0722, 2.0])


# --- SSIM --------------------------------------------------------------------------------------

def ssim_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM written out: 11×11 Gaussian weights (σ = 1.5) at every position whose
    window fits inside the image, population statistics, mean per channel, then over channels."""
    offsets = np.arange(-5, 6)
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    h, wd, channels = x.shape
    per_channel = []
    for c in range(channels):
        values = []
        for i in range(5, h - 5):
            for j in range(5, wd - 5):
                a = x[i - 5:i + 6, j - 5:j + 6, c]
                b = y[i - 5:i + 6, j - 5:j + 6, c]
                mu_a, mu_b = (w * a).sum(), (w * b).sum()
                var_a = (w * (a - mu_a) ** 2).sum()
                var_b = (w * (b - mu_b) ** 2).sum()
                cov = (w * (a - mu_a) * (b - mu_b)).sum()
                values.append((2 * mu_a * mu_b + C1) * (2 * cov + C2)
                              / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2)))
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_ssim_matches_the_definition_written_with_loops():
    rng = np.random.default_rng(0)
    x = rng.random((14, 13, 3))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    assert ssim(x, y) == pytest.approx(ssim_by_loops(x, y), abs=1e-12)


def test_ssim_t_of_constant_frames_by_hand():
    # constant frames have no variance: SSIM = (2ab + C1) / (a² + b² + C1) with a, b the μ-law
    # values, the same at every position and in every channel
    a, b = T(0.5), T(0.25)
    expected = (2 * a * b + C1) / (a**2 + b**2 + C1)
    assert ssim_t(constant(0.5), constant(0.25)) == pytest.approx(expected, rel=1e-7)  # float32 T


def test_ssim_t_identical_is_one():
    rng = np.random.default_rng(1)
    frame = (rng.random((20, 24, 3)) * 4).astype(np.float32)
    assert ssim_t(frame, frame) == pytest.approx(1.0, abs=1e-12)
    assert psnr_t(frame, frame) == math.inf


def test_ssim_averages_the_channels():
    rng = np.random.default_rng(2)
    x = rng.random((16, 16, 3))
    y = x.copy()
    y[..., 1] = rng.random((16, 16))  # only green differs
    per_channel = [ssim(x[..., c], y[..., c]) for c in range(3)]
    assert per_channel[0] == per_channel[2] == pytest.approx(1.0)
    assert ssim(x, y) == pytest.approx(np.mean(per_channel))


def test_ssim_matches_skimage():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    x = rng.random((40, 33, 3))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    expected = skimage_metrics.structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
        channel_axis=2)
    assert ssim(x, y) == pytest.approx(expected, abs=1e-12)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(ValueError, match="smaller than the 11×11 window"):
        ssim(np.zeros((10, 20, 3)), np.zeros((10, 20, 3)))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((12, 12, 3)), np.zeros((12, 13, 3)))


# --- temporal error ----------------------------------------------------------------------------

def test_temporal_error_of_a_known_sequence():
    gt = [constant(0.25)] * 4                       # static truth
    pred = [constant(v) for v in (0.25, 0.5, 0.5, 0.25)]
    d = T(0.5) - T(0.25)
    steps = [temporal_error_step(pred[t - 1], pred[t], gt[t - 1], gt[t]) for t in (1, 2, 3)]
    assert steps == pytest.approx([d, 0.0, d], rel=1e-6)
    assert temporal_error(pred, gt) == pytest.approx(2 * d / 3, rel=1e-6)


def test_temporal_error_is_zero_when_changes_match():
    # a constant offset in T leaves the frame-to-frame change unchanged
    gt = [constant(v) for v in (0.1, 0.2, 0.4)]
    assert temporal_error(gt, gt) == 0.0
    moving_truth = [constant(v) for v in (0.25, 0.5)]
    static_pred = [constant(0.25)] * 2
    assert temporal_error(static_pred, moving_truth) == pytest.approx(T(0.5) - T(0.25), rel=1e-6)


def test_temporal_error_per_pixel_mean():
    # only a quarter of the pixels flicker
    gt = [constant(0.25)] * 2
    pred = [constant(0.25), constant(0.25)]
    pred[1][:8, :8] = 0.5
    assert temporal_error(pred, gt) == pytest.approx((T(0.5) - T(0.25)) / 4, rel=1e-6)


def test_temporal_error_needs_two_frames():
    assert math.isnan(temporal_error([constant(0.1)], [constant(0.1)]))


# --- optional metrics --------------------------------------------------------------------------

# PU21 (Mantiuk & Azimi 2021), "banding_glare" parameters, for a check independent of pycvvdp
PU21_P = (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166,
          0.9099517204, 596.3148142)


def pu21_by_hand(luminance):
    y = np.clip(np.asarray(luminance, np.float64), 0.005, 10000.0) ** PU21_P[3]
    return PU21_P[6] * (((PU21_P[0] + PU21_P[1] * y) / (1 + PU21_P[2] * y)) ** PU21_P[4]
                        - PU21_P[5])


class HandPU:
    encode = staticmethod(pu21_by_hand)


def test_missing_optional_reports_the_reason(monkeypatch):
    monkeypatch.setitem(metrics.OPTIONAL_MODULES, "flip", "no_such_module_hdrvid")
    assert "no_such_module_hdrvid cannot be imported" in metrics.missing_optional("flip")
    monkeypatch.setitem(metrics.OPTIONAL_MODULES, "flip", "json")
    assert metrics.missing_optional("flip") is None


def test_pu21_psnr_by_hand(monkeypatch):
    monkeypatch.setattr(metrics, "_pu21", lambda: HandPU())
    # grey 0.1 is 100 cd/m² (k = 1000); pure red 0.1 is 0.2126 · 100 cd/m²
    peak = pu21_by_hand(100.0)
    grey, red = constant(0.1), np.zeros((16, 16, 3), np.float32)
    red[..., 0] = 0.1
    expected = 20 * math.log10(peak / abs(pu21_by_hand(100.0) - pu21_by_hand(21.26)))
    assert pu21_psnr(red, grey) == pytest.approx(expected, rel=1e-6)
    half = grey.copy()
    half[:8] = 0.05  # half the pixels at 50 cd/m²: MSE halves
    expected = 10 * math.log10(peak**2 / ((pu21_by_hand(100.0) - pu21_by_hand(50.0)) ** 2 / 2))
    assert pu21_psnr(half, grey) == pytest.approx(expected, rel=1e-6)
    assert pu21_psnr(grey, grey) == math.inf


def test_pu21_matches_pycvvdp():
    requires_optional("cvvdp")
    y = np.array([0.001, 0.005, 1.0, 100.0, 1000.0, 20000.0])
    np.testing.assert_allclose(metrics.pu21_encode(y), pu21_by_hand(y), rtol=1e-9)
    rng = np.random.default_rng(4)
    gt = rng.random((16, 16, 3)).astype(np.float32)
    assert pu21_psnr(gt * 1.1, gt) == pytest.approx(
        20 * math.log10(pu21_by_hand(100.0) / np.sqrt(np.mean(
            (pu21_by_hand(1000 * luminance_bt709(gt * 1.1))
             - pu21_by_hand(1000 * luminance_bt709(gt))) ** 2))), rel=1e-5)


def test_hdr_flip():
    requires_optional("flip")
    import flip_evaluator

    rng = np.random.default_rng(5)
    gt = (rng.random((32, 32, 3)) * 2).astype(np.float32)
    pred = gt * 1.2
    assert hdr_flip(gt, gt) == 0.0
    _, direct, _ = flip_evaluator.evaluate(1000 * gt, 1000 * pred, "HDR", applyMagma=False)
    assert hdr_flip(pred, gt) == pytest.approx(direct)
    assert 0 < hdr_flip(pred, gt) < hdr_flip(gt * 3, gt) <= 1


def test_hdr_flip_refuses_undefined_input_instead_of_exiting():
    requires_optional("flip")
    with pytest.raises(ValueError, match="black"):
        hdr_flip(constant(0.5), constant(0.0))  # the library would call exit() here
    bad = constant(0.5)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hdr_flip(bad, constant(0.5))


def test_cvvdp_jod():
    requires_optional("cvvdp")
    rng = np.random.default_rng(6)
    gt = (rng.random((3, 64, 64, 3)) * 0.5).astype(np.float32)
    assert metrics.cvvdp_jod(gt, gt, fps=24, device="cpu") == pytest.approx(10.0, abs=1e-3)
    worse = gt.copy()
    worse[:, ::2] = 0
    assert metrics.cvvdp_jod(worse, list(gt), fps=24, device="cpu") < 9.5
