"""PSNR-T and PSNR-L (conventions.md §8)."""

import math

import numpy as np
import pytest

from hdrvid.metrics import psnr_l, psnr_t, tonemap_mulaw


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
