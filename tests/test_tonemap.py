"""Tone curves, transfer functions and the per-clip tone mapper (`hdrvid.tonemap`).

Known values come from the standards (ST 2084, IEC 61966-2-1, BT.2087) or are worked out here
from the published formulas, written out independently of the module's code.
"""

import math

import numpy as np
import pytest

from hdrvid import tonemap
from hdrvid.response import eotf_srgb
from hdrvid.tonemap import (
    BT709_TO_BT2020,
    OPERATORS,
    PRESERVE_MODES,
    ToneMapOptions,
    ToneMapper,
    content_light_level,
    eotf_inverse_bt1886,
    eotf_inverse_st2084,
    eotf_st2084,
    log_average_luminance,
    luminance_bt709,
    oetf_srgb,
    tonemap_aces,
    tonemap_hable,
    tonemap_mulaw,
    tonemap_reinhard2002,
)

SPECIAL = [np.nan, np.inf, -np.inf, -1.0, 0.0, 1e-6, 0.5, 1e6]  # one of each kind of input


def hable_reference(x: float) -> float:
    """Hable's Uncharted 2 curve as published: F(x) / F(W)."""
    A, B, C, D, E, F, W = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30, 11.2

    def f(v):
        return ((v * (A * v + C * B) + D * E) / (v * (A * v + B) + D * F)) - E / F

    return f(x) / f(W)


def aces_reference(rgb) -> list[float]:
    """Stephen Hill's ACESFitted, transcribed from ACES.hlsl one scalar at a time."""
    m_in = [[0.59719, 0.35458, 0.04823], [0.07600, 0.90834, 0.01566],
            [0.02840, 0.13383, 0.83777]]
    m_out = [[1.60475, -0.53108, -0.07367], [-0.10208, 1.10813, -0.00605],
             [-0.00327, -0.07276, 1.07602]]
    v = [sum(m_in[i][j] * rgb[j] for j in range(3)) for i in range(3)]
    v = [(c * (c + 0.0245786) - 0.000090537) / (c * (0.983729 * c + 0.4329510) + 0.238081)
         for c in v]
    return [min(max(sum(m_out[i][j] * v[j] for j in range(3)), 0.0), 1.0) for i in range(3)]


def scene(height=24, width=32, seed=0) -> np.ndarray:
    """A small HDR frame: coloured pixels over 3 decades, plus a bright lamp of 20."""
    rng = np.random.default_rng(seed)
    level = 10 ** rng.uniform(-3, 0, (height, width, 1))
    hdr = (level * rng.uniform(0.1, 1.0, (height, width, 3))).astype(np.float32)
    hdr[:4, :4] = 20.0
    return hdr


def frame_with_special_pixels() -> np.ndarray:
    hdr = scene()
    hdr[10, 0] = np.nan
    hdr[10, 1] = [np.nan, 0.1, 0.2]
    hdr[10, 2] = -1.0
    hdr[10, 3] = -np.inf
    hdr[10, 4] = np.inf
    hdr[10, 5] = [np.inf, 0.0, 0.0]
    hdr[10, 6] = 1e6
    return hdr


# --- tone curves -------------------------------------------------------------------------------

def test_reinhard_known_values():
    np.testing.assert_allclose(tonemap_reinhard2002([0.0, 1.0, 3.0]), [0.0, 0.5, 0.75])
    assert tonemap_reinhard2002(1.0, white=2.0) == pytest.approx(1 * (1 + 1 / 4) / 2)  # 0.625
    assert tonemap_reinhard2002(4.0, white=4.0) == pytest.approx(1.0)  # L_white maps to 1
    assert tonemap_reinhard2002(9.0, white=4.0) == 1.0  # and beyond it clips
    with pytest.raises(ValueError, match="white point"):
        tonemap_reinhard2002(1.0, white=0.0)


def test_hable_known_values():
    assert tonemap_hable(11.2) == pytest.approx(1.0, abs=1e-15)
    assert tonemap_hable(np.float32(11.2)) == pytest.approx(1.0, abs=1e-6)
    assert tonemap_hable(0.0) == 0.0
    # F(1) = (1(0.15 + 0.05) + 0.004) / (1(0.15 + 0.5) + 0.06) − 0.02/0.3, and F(11.2) alike
    f_1, f_w = 0.204 / 0.71 - 0.02 / 0.3, 19.38 / 24.476 - 0.02 / 0.3
    assert tonemap_hable(1.0) == pytest.approx(f_1 / f_w)  # 0.3043
    x = np.logspace(-4, math.log10(11.2), 50)
    np.testing.assert_allclose(tonemap_hable(x), [hable_reference(v) for v in x], rtol=1e-12,
                               atol=1e-15)
    assert tonemap_hable(100.0) == 1.0  # F saturates at 1.29 F(W): clipped


def test_aces_known_values():
    grey = 0.18
    fit = ((grey * (grey + 0.0245786) - 0.000090537)
           / (grey * (0.983729 * grey + 0.4329510) + 0.238081))
    assert fit == pytest.approx(0.10559, abs=1e-5)
    # both matrices' rows sum to 1 (to 1e-5), so grey stays grey
    np.testing.assert_allclose(tonemap_aces([grey] * 3), [fit] * 3, atol=2e-6)
    for rgb in ([1.0, 0.5, 0.1], [10.0, 0.01, 2.0], [0.02, 0.03, 0.001], [40.0, 40.0, 40.0]):
        np.testing.assert_allclose(tonemap_aces(np.array(rgb)), aces_reference(rgb), atol=1e-12)
        np.testing.assert_allclose(tonemap_aces(np.array(rgb, np.float32)), aces_reference(rgb),
                                   atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        tonemap_aces(np.ones((4, 2)))


def test_mulaw_operator_is_the_metrics_curve():
    x = np.array([0.0, 1e-4, 0.01, 0.5, 1.0, 4.0], np.float32)
    expected = np.log1p(5000 * np.minimum(x.astype(np.float64), 1)) / math.log1p(5000)
    np.testing.assert_allclose(tonemap_mulaw(x), expected, rtol=1e-6)
    assert tonemap_mulaw(0.5, mu=1.0) == pytest.approx(math.log(1.5) / math.log(2))


# --- transfer functions ------------------------------------------------------------------------

def test_srgb_known_values():
    assert oetf_srgb(0.0031308) == pytest.approx(12.92 * 0.0031308)  # the knee: 0.04045
    assert oetf_srgb(0.0031308 + 1e-9) == pytest.approx(0.04045, abs=1e-5)  # continuous there
    assert oetf_srgb(0.18) == pytest.approx(0.4614, abs=1e-4)
    assert oetf_srgb(0.0) == 0.0
    assert oetf_srgb(1.0) == pytest.approx(1.0)
    assert oetf_srgb(2.0) == pytest.approx(1.0)
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(eotf_srgb(oetf_srgb(x)), x, atol=1e-12)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(oetf_srgb(x32), oetf_srgb(x), atol=1e-6)


def test_bt1886_known_values():
    assert eotf_inverse_bt1886(0.18) == pytest.approx(0.18 ** (1 / 2.4))
    assert eotf_inverse_bt1886(0.18, gamma=2.2) == pytest.approx(0.18 ** (1 / 2.2))
    assert eotf_inverse_bt1886(0.0) == 0.0
    assert eotf_inverse_bt1886(1.0) == 1.0
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(eotf_inverse_bt1886(x) ** 2.4, x, atol=1e-12)


def test_st2084_constants_and_known_values():
    assert (tonemap.PQ_M1, tonemap.PQ_M2) == (0.1593017578125, 78.84375)
    assert (tonemap.PQ_C1, tonemap.PQ_C2, tonemap.PQ_C3) == (0.8359375, 18.8515625, 18.6875)
    assert tonemap.PQ_C1 == tonemap.PQ_C3 - tonemap.PQ_C2 + 1
    assert eotf_st2084(1.0) == 10000.0
    assert eotf_st2084(0.0) == 0.0
    assert eotf_inverse_st2084(10000.0) == 1.0
    assert eotf_inverse_st2084(0.0) == pytest.approx(tonemap.PQ_C1 ** tonemap.PQ_M2)  # 7.3e-7
    for dtype, tolerance in ((np.float64, 1e-5), (np.float32, 2e-5)):
        nits = np.array([100.0, 1000.0], dtype)
        np.testing.assert_allclose(eotf_inverse_st2084(nits), [0.50808, 0.75183],
                                   atol=tolerance)
    assert eotf_inverse_st2084(np.float32(100)).dtype == np.float32


def test_st2084_round_trips():
    nits = np.logspace(-3, 4, 200)
    np.testing.assert_allclose(eotf_st2084(eotf_inverse_st2084(nits)), nits, rtol=1e-9)
    np.testing.assert_allclose(eotf_st2084(eotf_inverse_st2084(nits.astype(np.float32))), nits,
                               rtol=2e-3)
    code = np.linspace(0, 1, 1025)
    code[0] = tonemap.PQ_C1 ** tonemap.PQ_M2  # what 0 cd/m² encodes to (7.3e-7)
    np.testing.assert_allclose(eotf_inverse_st2084(eotf_st2084(code)), code, atol=1e-9)
    np.testing.assert_allclose(eotf_inverse_st2084(eotf_st2084(code.astype(np.float32))), code,
                               atol=3e-5)  # float32: a tenth of a 12-bit code


# --- every curve: monotonic, any shape, robust -------------------------------------------------

CURVES = {  # name: (function of a 1-D-curve input, value for +inf)
    "reinhard": (tonemap_reinhard2002, 1.0),
    "reinhard-white": (lambda x: tonemap_reinhard2002(x, white=4.0), 1.0),
    "hable": (tonemap_hable, 1.0),
    "aces": (lambda x: tonemap_aces(np.stack([x, x, x], axis=-1))[..., 1], 1.0),
    "mu-law": (tonemap_mulaw, 1.0),
    "oetf_srgb": (oetf_srgb, 1.0),
    "eotf_inverse_bt1886": (eotf_inverse_bt1886, 1.0),
    "eotf_st2084": (eotf_st2084, 10000.0),
    "eotf_inverse_st2084": (eotf_inverse_st2084, 1.0),
}


@pytest.mark.parametrize("name", CURVES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_curves_are_monotonic(name, dtype):
    curve, _ = CURVES[name]
    y = curve(np.logspace(-6, 6, 2000).astype(dtype))
    assert np.all(np.diff(y) >= 0)
    assert y[-1] > y[0]


@pytest.mark.parametrize("name", CURVES)
@pytest.mark.parametrize("shape", [(8,), (2, 4), (2, 2, 2)])
def test_curves_keep_shape_and_stay_finite(name, shape):
    curve, top = CURVES[name]
    x = np.array(SPECIAL, np.float32).reshape(shape)
    y = curve(x)
    assert y.shape == shape
    assert np.isfinite(y).all() and (y >= 0).all() and (y <= top).all()
    flat = y.ravel()
    zero = curve(np.float32(0.0))
    np.testing.assert_allclose(flat[[0, 2, 3]], zero)  # NaN, -inf, negative: as 0
    assert flat[1] == pytest.approx(top)  # +inf: the top of the range
    assert flat[7] == pytest.approx(top, rel=1e-5)  # 1e6
    assert np.ndim(curve(0.5)) == 0


@pytest.mark.parametrize("shape", [(3,), (8, 3), (2, 4, 3)])
def test_colour_functions_take_any_leading_shape(shape):
    x = np.resize(np.array(SPECIAL, np.float32), shape)
    mapped = tonemap_aces(x)
    assert mapped.shape == shape and np.isfinite(mapped).all()
    assert ((mapped >= 0) & (mapped <= 1)).all()
    with np.errstate(invalid="ignore"):  # inf − inf: NaN, as documented
        assert luminance_bt709(x).shape == shape[:-1]
    assert luminance_bt709(np.ones(shape)) == pytest.approx(np.ones(shape[:-1]))


# --- colour ------------------------------------------------------------------------------------

def npm(primaries, white):
    """Normalised primary matrix (RGB -> XYZ) from xy chromaticities (SMPTE RP 177)."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    w = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return xyz * np.linalg.solve(xyz, w)


def test_bt709_to_bt2020():
    d65 = (0.3127, 0.3290)
    bt709 = npm([(0.640, 0.330), (0.300, 0.600), (0.150, 0.060)], d65)
    bt2020 = npm([(0.708, 0.292), (0.170, 0.797), (0.131, 0.046)], d65)
    np.testing.assert_allclose(BT709_TO_BT2020, np.linalg.solve(bt2020, bt709), atol=1e-14)
    bt2087 = [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
    np.testing.assert_allclose(BT709_TO_BT2020, bt2087, atol=5e-5)
    np.testing.assert_allclose(BT709_TO_BT2020.sum(axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(BT709_TO_BT2020 @ [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], atol=1e-14)


def test_luminance_bt709():
    assert luminance_bt709([1.0, 0.0, 0.0]) == pytest.approx(0.2126)
    assert luminance_bt709(np.array([0.0, 1.0, 0.0], np.float32)).dtype == np.float32
    assert luminance_bt709([0.5, 0.5, 0.5]) == pytest.approx(0.5)


def test_content_light_level_of_a_known_frame():
    nits = np.array([[[100, 50, 10], [0, 0, 0]],
                     [[1000, 2000, 30], [-5, 300, np.nan]]], np.float32)
    assert content_light_level(nits) == pytest.approx((2000.0, 600.0))  # (100+0+2000+300)/4
    nits[0, 1] = np.inf  # above what PQ can carry: counted as 10,000
    assert content_light_level(nits) == pytest.approx((10000.0, 3100.0))


# --- key ---------------------------------------------------------------------------------------

def test_log_average_luminance():
    assert log_average_luminance(np.full((8, 8, 3), 0.01)) == pytest.approx(0.01, rel=1e-3)
    two_levels = np.full((8, 8, 3), 0.01)
    two_levels[:4] = 0.04
    assert log_average_luminance(two_levels) == pytest.approx(0.02, rel=1e-3)  # geometric mean
    with_outliers = np.full((100, 100, 3), 0.01)
    with_outliers[0, :50] = 1e6  # 0.5 % of the pixels, above the 99th percentile
    with_outliers[1, :50] = 1e-9  # and 0.5 % below the 1st
    assert log_average_luminance(with_outliers) == pytest.approx(0.01, rel=1e-3)
    spoilt = two_levels.copy()
    spoilt[0, 0], spoilt[0, 1], spoilt[0, 2], spoilt[0, 3] = np.nan, -1.0, np.inf, -np.inf
    assert log_average_luminance(spoilt) == pytest.approx(0.02, rel=0.05)
    assert log_average_luminance(np.zeros((8, 8, 3))) == pytest.approx(tonemap.KEY_FLOOR)
    assert log_average_luminance(np.full((8, 8, 3), np.nan)) == tonemap.KEY_FLOOR


# --- ToneMapper --------------------------------------------------------------------------------

@pytest.mark.parametrize("preserve", PRESERVE_MODES)
@pytest.mark.parametrize("operator", OPERATORS)
def test_tonemapper_output_is_finite_and_in_range(operator, preserve):
    mapper = ToneMapper(ToneMapOptions(operator=operator, preserve=preserve))
    out = mapper(frame_with_special_pixels())
    assert out.shape == (24, 32, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    np.testing.assert_array_equal(out[10, 0], 0)  # NaN
    np.testing.assert_array_equal(out[10, 2], 0)  # negative
    np.testing.assert_array_equal(out[10, 3], 0)  # -inf
    np.testing.assert_allclose(out[10, 4], 1, atol=1e-5)  # +inf
    assert out[10, 5].max() == pytest.approx(1, abs=1e-5)  # +inf in red
    np.testing.assert_allclose(out[10, 6], 1, atol=1e-5)  # 1e6
    black = mapper(np.zeros((16, 16, 3), np.float32))
    np.testing.assert_array_equal(black, 0)
    assert mapper.key_history[-1] > 0


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_tonemapper_accepts_other_float_types(dtype):
    hdr = scene()
    out = ToneMapper()(hdr.astype(dtype))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ToneMapper()(hdr), atol=2e-3)


@pytest.mark.parametrize("operator", OPERATORS)
def test_channels_mode_is_the_curve_on_the_scaled_frame(operator):
    hdr = scene()
    out = ToneMapper(ToneMapOptions(operator=operator, preserve="channels", exposure=0.5))(hdr)
    gain = 2**0.5 * 0.18 / log_average_luminance(hdr)
    expected = {
        "reinhard": lambda: tonemap_reinhard2002(hdr * gain),
        "hable": lambda: tonemap_hable(2 * hdr * gain),  # Hable's ExposureBias
        "aces": lambda: tonemap_aces(hdr * gain),
        "mu-law": lambda: tonemap_mulaw(hdr * 2**0.5),  # absolute scale: no key
        "exposure": lambda: np.clip(hdr * gain, 0, 1),
    }[operator]()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_key_scales_the_log_average():
    grey = np.full((16, 16, 3), 0.01, np.float32)
    out = ToneMapper(ToneMapOptions(operator="exposure"))(grey)
    np.testing.assert_allclose(out, 0.18, rtol=1e-3)
    out = ToneMapper(ToneMapOptions(operator="exposure", exposure=1.0, key=0.1))(grey)
    np.testing.assert_allclose(out, 0.2, rtol=1e-3)
    out = ToneMapper(ToneMapOptions(operator="reinhard", white=0.18))(grey)
    np.testing.assert_allclose(out, 1.0, rtol=1e-3)  # the key at the white point
    out = ToneMapper(ToneMapOptions(operator="mu-law"))(grey)
    np.testing.assert_allclose(out, tonemap_mulaw(0.01), rtol=1e-6)


@pytest.mark.parametrize("operator", OPERATORS)
def test_luminance_mode_keeps_hue(operator):
    hdr = scene()
    out = ToneMapper(ToneMapOptions(operator=operator))(hdr)
    # every pixel keeps its curve-mapped luminance, clipped or not ...
    y = luminance_bt709(hdr) * np.float32(0.18 / log_average_luminance(hdr))
    expected = {
        "reinhard": lambda: tonemap_reinhard2002(y),
        "hable": lambda: tonemap_hable(2 * y),
        "aces": lambda: tonemap_aces(np.stack([y, y, y], axis=-1))[..., 0],  # row sums 1
        "mu-law": lambda: tonemap_mulaw(luminance_bt709(hdr)),
        "exposure": lambda: np.clip(y, 0, 1),
    }[operator]()
    np.testing.assert_allclose(luminance_bt709(out), expected, atol=2e-6)
    # ... unclipped pixels keep their RGB ratios exactly (ACES's toe maps the darkest to 0) ...
    unclipped = out.max(axis=-1) < 1 - 1e-6
    visible = unclipped & (out.min(axis=-1) > 0)
    assert visible.mean() > 0.5
    ratio = out[visible] / hdr[visible]
    np.testing.assert_allclose(ratio / ratio[:, 1:2], 1, rtol=1e-5)
    # ... and clipped ones their hue angle: out − Y ∝ hdr / Y_hdr − 1, positive factor
    clipped = ~unclipped & (out.max(axis=-1) - out.min(axis=-1) > 1e-3)
    if clipped.any():
        a = out[clipped] - luminance_bt709(out[clipped])[:, None]
        b = hdr[clipped] / luminance_bt709(hdr[clipped])[:, None] - 1
        cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        np.testing.assert_allclose(cosine, 1, atol=1e-4)


# --- temporal smoothing ------------------------------------------------------------------------

def dark_then_bright(n_dark=10, n_bright=30) -> list[np.ndarray]:
    dark = scene(seed=1) * np.float32(0.01)
    dark[:4, :4] = 0.01  # no lamp yet
    bright = dark.copy()
    bright[:12, :16] = 0.8  # a bright object covering a quarter of the frame
    return [dark] * n_dark + [bright] * n_bright


def test_key_step_moves_at_most_the_smoothing_bound():
    frames = dark_then_bright()
    tau = 1.0
    mapper = ToneMapper(ToneMapOptions(operator="exposure", time_constant=tau))
    outputs = [mapper(frame) for frame in frames]  # time None: 1/24 s apart
    keys = np.log(mapper.key_history)
    current = np.log([log_average_luminance(frame) for frame in frames])
    alpha = 1 - math.exp(-(1 / 24) / tau)
    assert keys[0] == pytest.approx(current[0])
    for t in range(1, len(frames)):
        gap = current[t] - keys[t - 1]
        assert abs(keys[t] - keys[t - 1]) <= alpha * abs(gap) + 1e-12
        assert keys[t] - keys[t - 1] == pytest.approx(alpha * gap, abs=1e-9)
    assert current[10] - current[9] > 1.0  # the step is large ...
    assert keys[10] - keys[9] < 0.05 * (current[10] - current[9])  # ... the key moves a little
    remaining = (current[-1] - keys[-1]) / (current[-1] - keys[9])
    assert remaining == pytest.approx((1 - alpha) ** 30)  # exp(−1.25 s / τ)
    # the key is what the frame was scaled with: dark pixels show 0.18 / key × value
    for out, frame, key in zip(outputs, frames, mapper.key_history, strict=True):
        assert out[20, 20, 1] == pytest.approx(frame[20, 20, 1] * 0.18 / key, rel=1e-5)


def test_time_constant_zero_follows_instantly():
    frames = dark_then_bright(3, 3)
    mapper = ToneMapper(ToneMapOptions(time_constant=0.0))
    for frame in frames:
        mapper(frame)
    expected = [log_average_luminance(frame) for frame in frames]
    np.testing.assert_allclose(mapper.key_history, expected, rtol=1e-12)


def test_variable_frame_times_are_respected():
    dark, bright = dark_then_bright(1, 1)
    frames = [dark, bright, dark, bright, bright, dark]
    times = [0.0, 0.01, 0.5, 0.5, 2.0, 1.0]  # uneven, one repeat, one going backwards
    tau = 0.25
    mapper = ToneMapper(ToneMapOptions(time_constant=tau))
    for frame, time in zip(frames, times, strict=True):
        mapper(frame, time)
    keys = np.log(mapper.key_history)
    current = np.log([log_average_luminance(frame) for frame in frames])
    for t in range(1, len(frames)):
        dt = max(times[t] - times[t - 1], 0.0)
        alpha = 1 - math.exp(-dt / tau)
        assert keys[t] == pytest.approx(keys[t - 1] + alpha * (current[t] - keys[t - 1]))
    assert keys[3] == keys[2]  # dt = 0
    assert keys[5] == keys[4]  # time went backwards: dt = 0


def test_default_time_step_is_one_24th():
    dark, bright = dark_then_bright(1, 1)
    mapper = ToneMapper(ToneMapOptions(time_constant=0.5))
    mapper(dark, 10.0)
    mapper(bright)  # 1/24 s after the previous call
    start, target = math.log(log_average_luminance(dark)), math.log(log_average_luminance(bright))
    alpha = 1 - math.exp(-(1 / 24) / 0.5)
    assert math.log(mapper.key_history[1]) == pytest.approx(start + alpha * (target - start))


# --- options -----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"operator": "drago"}, ("unknown tone-mapping operator 'drago'; choose one of reinhard, "
                             "hable, aces, mu-law, exposure")),
    ({"preserve": "hue"}, "unknown preserve mode 'hue'"),
    ({"key": 0.0}, "key must be a positive number"),
    ({"time_constant": -1.0}, "time constant must be ≥ 0"),
    ({"white": -2.0}, "white point must be positive"),
    ({"exposure": math.nan}, "exposure must be a finite number"),
])
def test_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        ToneMapOptions(**options)


def test_tonemapper_rejects_frames_that_are_not_hwc_rgb():
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) frame, got shape \(4, 4\)"):
        ToneMapper()(np.zeros((4, 4)))


# --- the operator table ------------------------------------------------------------------------

def test_an_operator_added_to_the_table_is_applied_by_the_mapper(monkeypatch):
    """The table is the only place an operator is defined: a new entry is a valid option, and
    the mapper scales to the key and applies its curve (here x / 2, on each channel)."""
    monkeypatch.setitem(OPERATORS, "half", tonemap.Operator(lambda x, white: x / 2, "halves"))
    grey = np.full((8, 8, 3), 0.72, np.float32)  # the key (0.18) is a quarter of it
    out = ToneMapper(ToneMapOptions(operator="half", preserve="channels"))(grey)
    np.testing.assert_allclose(out, 0.09, rtol=1e-4)


def test_the_cli_offers_every_operator_with_its_help():
    from click.testing import CliRunner

    from hdrvid.cli import main

    text = " ".join(CliRunner().invoke(main, ["convert", "--help"]).output.split())
    assert f"[{'|'.join(OPERATORS)}]" in text
    for name, operator in OPERATORS.items():
        assert f"{name}: {operator.help}" in text
    assert f"[default: {tonemap.DEFAULT_OPERATOR}]" in text.split("--tonemap")[1]
