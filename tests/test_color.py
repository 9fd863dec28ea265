"""hdrvid.color: each curve defined once, its numpy form and torch twin agreeing, and the
modules that use them reading these definitions."""

import math

import numpy as np
import pytest
import torch

from hdrvid import color, metrics, response, tonemap
from hdrvid.models import common
from hdrvid.training import loop
from hdrvid.video import ColorInfo, ycbcr_to_rgb_matrix


def test_one_gamma_and_one_mu():
    assert color.GAMMA == 2.2 and color.MU == 5000.0
    assert response.GAMMA is color.GAMMA and common.GAMMA is color.GAMMA
    assert tonemap.MU is color.MU and metrics.MU is color.MU
    assert loop.mu_law is color.mu_law_torch and loop.psnr_t is color.psnr_t_torch
    assert metrics.psnr_t is color.psnr_t and metrics.tonemap_mulaw is color.mu_law


def test_mu_law_values_and_twins_agree():
    x = np.array([-1.0, 0.0, 1e-4, 0.01, 0.5, 1.0, 7.0, np.nan], np.float32)
    expected = [0.0, 0.0, math.log1p(0.5) / math.log1p(5000), math.log1p(50) / math.log1p(5000),
                math.log1p(2500) / math.log1p(5000), 1.0, 1.0, 0.0]
    np.testing.assert_allclose(color.mu_law(x), expected, rtol=1e-6)
    assert color.mu_law(x).dtype == np.float32
    assert color.mu_law(x.astype(np.float64)).dtype == np.float64
    finite = torch.from_numpy(x[:-1])
    np.testing.assert_allclose(color.mu_law_torch(finite).numpy(), expected[:-1], rtol=1e-6)


def test_psnr_t_twins_agree():
    rng = np.random.default_rng(1)
    pred = rng.random((2, 3, 16, 16)).astype(np.float32) * 2
    gt = np.clip(pred + rng.normal(0, 0.01, pred.shape).astype(np.float32), 0, None)
    batch = color.psnr_t_torch(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()
    for i in range(2):
        assert batch[i] == pytest.approx(color.psnr_t(pred[i], gt[i]), abs=1e-3)
    assert color.psnr_t(gt[0], gt[0]) == math.inf
    assert color.psnr_t_torch(torch.ones(1, 3), torch.ones(1, 3)).item() == pytest.approx(100.0)


def test_srgb_twins_agree_and_hit_the_standard_points():
    v = np.array([0.0, 0.04045, 0.5, 1.0], np.float32)
    expected = [0.0, 0.04045 / 12.92, ((0.5 + 0.055) / 1.055) ** 2.4, 1.0]
    np.testing.assert_allclose(color.eotf_srgb(v), expected, rtol=1e-6)
    np.testing.assert_allclose(color.eotf_srgb_torch(torch.from_numpy(v)).numpy(), expected,
                               rtol=1e-6)


@pytest.mark.parametrize("bits, full", [(8, False), (10, False), (8, True)])
def test_ycbcr_twins_agree_and_map_white_and_black(bits, full):
    matrix = color.ycbcr_to_rgb_matrix(bits, "bt709", full)
    assert np.array_equal(matrix, ycbcr_to_rgb_matrix(bits, ColorInfo("bt709", full, True)))
    scale = 2 ** (bits - 8)
    low, high, mid = (0, 2**bits - 1, 2 ** (bits - 1)) if full else (16 * scale, 235 * scale,
                                                                     128 * scale)
    codes = np.array([[[low, mid, mid], [high, mid, mid]]], np.float32)  # black, white
    rgb = color.ycbcr_to_rgb(codes, matrix)
    np.testing.assert_allclose(rgb, [[[0, 0, 0], [1, 1, 1]]], atol=1e-6)
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 2**bits, (6, 7, 3)).astype(np.float32)
    on_torch = color.ycbcr_to_rgb_torch(torch.from_numpy(codes).permute(2, 0, 1),
                                        torch.from_numpy(matrix))
    np.testing.assert_allclose(on_torch.permute(1, 2, 0).numpy(),
                               color.ycbcr_to_rgb(codes, matrix), atol=1e-6)


def test_importing_color_loads_neither_torch_nor_opencv():
    import subprocess
    import sys

    script = "import sys, hdrvid.color; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "False False"
