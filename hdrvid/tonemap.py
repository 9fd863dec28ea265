"""Tone mapping and display encodings for linear HDR frames (numpy only).

HDR frames are linear Rec.709 RGB on the hdrvid scale: float (H, W, 3), 1.0 = the clipping
point of the shortest exposure. `ToneMapper` turns them into display-linear Rec.709 in [0, 1];
the caller then encodes with `oetf_srgb` (PNG) or `eotf_inverse_bt1886` (BT.709 video). HDR10
output uses `BT709_TO_BT2020`, `eotf_inverse_st2084` and `content_light_level`; HLG output
`oetf_hlg`. Decoding HDR video back to linear light uses `eotf_st2084` and `oetf_inverse_hlg`.

References
----------
- Reinhard, Stark, Shirley, Ferwerda 2002, "Photographic tone reproduction for digital
  images", SIGGRAPH: eq. 1 (log-average key), eq. 2 (scaling to the key), eq. 3 and 4.
- Reinhard 2002, "Parameter estimation for photographic tone reproduction", Journal of
  Graphics Tools 7(1): eq. 4 (the key value a from the log-average, minimum and maximum).
- Hable 2010, "Uncharted 2: HDR lighting", GDC, and the filmicworlds.com post "Filmic
  tonemapping operators": A–F, W = 11.2 and ExposureBias = 2.
- Hill, fitted ACES RRT + sRGB ODT (``ACES.hlsl`` in MJP's BakingLab, MIT licence).
- Kalantari & Ramamoorthi 2017, "Deep high dynamic range imaging of dynamic scenes": μ-law.
- IEC 61966-2-1:1999, sRGB; ITU-R BT.1886 (2011), reference EOTF for HDTV.
- SMPTE ST 2084:2014, perceptual quantizer (PQ).
- ITU-R BT.2100-2 (2018), Table 5: hybrid log-gamma (HLG, ARIB STD-B67) OETF and its inverse.
- ITU-R BT.2087-0 (2015), Rec.709 to Rec.2020 colour conversion (linear RGB matrix).
- CTA-861.3-A (2015), Annex P: MaxCLL and MaxFALL.

Every function accepts scalars and arrays of any shape (colour functions: any shape ending in
3 channels). Computations run in float32 unless the input is float64; NaN and negative inputs
count as 0 and +inf as the largest value, so outputs are always finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from hdrvid.color import MU, mu_law

DEFAULT_OPERATOR = "hable"  # one of OPERATORS (defined with the curves, below)
PRESERVE_MODES: tuple[str, ...] = ("luminance", "channels")

BT709_Y = (0.2126, 0.7152, 0.0722)  # ITU-R BT.709 luminance weights
# ITU-R BT.2087 linear Rec.709 -> Rec.2020 (rows: R, G, B out), derived from the two sets of
# primaries and D65; BT.2087 prints it to 4 decimals.
BT709_TO_BT2020 = np.array([
    [0.627403895934699, 0.329283038377884, 0.043313065687417],
    [0.069097289358232, 0.919540395075459, 0.011362315566309],
    [0.016391438875150, 0.088013307877226, 0.895595253247624],
])

# SMPTE ST 2084
PQ_M1 = 2610 / 4096 * (1 / 4)
PQ_M2 = 2523 / 4096 * 128
PQ_C1 = 3424 / 4096
PQ_C2 = 2413 / 4096 * 32
PQ_C3 = 2392 / 4096 * 32
PQ_PEAK = 10000.0  # cd/m² at code value 1

# ITU-R BT.2100 HLG: a, b = 1 - 4a, c = 0.5 - a ln(4a)
HLG_A = 0.17883277
HLG_B = 1 - 4 * HLG_A
HLG_C = 0.5 - HLG_A * math.log(4 * HLG_A)

# Hable's Uncharted 2 curve: shoulder strength, linear strength, linear angle, toe strength,
# toe numerator, toe denominator, linear white point; ExposureBias
HABLE_A, HABLE_B, HABLE_C, HABLE_D, HABLE_E, HABLE_F = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
HABLE_W = 11.2
HABLE_EXPOSURE_BIAS = 2.0

# Hill's fit: sRGB => XYZ => D65_2_D60 => AP1 => RRT_SAT, and ODT_SAT => XYZ => D60_2_D65 => sRGB
ACES_INPUT = np.array([
    [0.59719, 0.35458, 0.04823],
    [0.07600, 0.90834, 0.01566],
    [0.02840, 0.13383, 0.83777],
])
ACES_OUTPUT = np.array([
    [1.60475, -0.53108, -0.07367],
    [-0.10208, 1.10813, -0.00605],
    [-0.00327, -0.07276, 1.07602],
])

KEY_FLOOR = 1e-6  # δ of Reinhard's eq. 1, and the smallest key (all-black frames)
LARGE = 1e8  # inputs are clamped here: every curve has reached 1 (to float32 precision) by then
TINY = 1e-30
FRAME_DURATION = 1 / 24  # seconds between calls that give no time
KEY_PIXELS = 256  # the key is measured on every n-th pixel, n = max(1, min(H, W) // KEY_PIXELS)
MID_GREY = 0.18  # Reinhard's middle grey: the key a of an average scene


def _clean(x, high: float = LARGE) -> np.ndarray:
    """Any array-like -> a new float32 (float64 for float64 input) array, NaN and values below
    0 set to 0, values above ``high`` (+inf included) set to ``high``."""
    x = np.asarray(x)
    out = np.empty(x.shape, _dtype(x))
    np.fmax(x, 0, out=out)
    return np.fmin(out, high, out=out)


def _rgb(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB values of shape (..., 3), got shape {x.shape}")
    return x


def _dtype(x: np.ndarray):
    return np.float64 if x.dtype == np.float64 else np.float32


# --- colour --------------------------------------------------------------------------------------

def luminance_bt709(rgb) -> np.ndarray:
    """(..., 3) linear BT.709 RGB -> (...) luminance ``0.2126 R + 0.7152 G + 0.0722 B``.

    float32 (float64 for float64 input); NaN and infinities propagate.
    """
    rgb = _rgb(rgb)
    dtype = _dtype(rgb)
    return rgb.astype(dtype, copy=False) @ np.array(BT709_Y, dtype)


def log_average_luminance(rgb, low: float = 1.0, high: float = 99.0,
                          eps: float = KEY_FLOOR) -> float:
    """Robust key of a frame: ``exp(mean(log(eps + Y)))`` (Reinhard et al. 2002, eq. 1).

    Parameters
    ----------
    rgb : (..., 3) linear BT.709 RGB (hdrvid scale).
    low, high : percentiles of the luminance Y; only pixels with Y between them count, so
        that a few specular highlights or dead pixels do not move the key.
    eps : δ of eq. 1; also the result for a frame without valid pixels.

    Returns
    -------
    float ≥ eps, in the units of ``rgb``. Pixels whose luminance is NaN, infinite or negative
    are ignored.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf: NaN, dropped below
        y = luminance_bt709(rgb).ravel()
    y = y[np.isfinite(y) & (y >= 0)]
    if y.size == 0:
        return float(eps)
    y_low, y_high = np.percentile(y, [low, high])
    y = y[(y >= y_low) & (y <= y_high)]
    return max(float(np.exp(np.mean(np.log(eps + y), dtype=np.float64))), eps)


# --- tone curves (scene-linear -> display-linear [0, 1]) --------------------------------------

def _reinhard(x: np.ndarray, white: float | None) -> np.ndarray:
    if white is None:
        return x / (1 + x)  # eq. 3
    return x * (1 + x / white**2) / (1 + x)  # eq. 4


def _hable_f(x):
    """Hable's F(x) = (x(Ax + CB) + DE) / (x(Ax + B) + DF) − E/F, with the two fractions
    combined so that F(0) = 0 exactly (no cancellation in float32)."""
    A, B, C, D, E, F = HABLE_A, HABLE_B, HABLE_C, HABLE_D, HABLE_E, HABLE_F
    return x * (A * (F - E) * x + B * (C * F - E)) / (x * (F * A * x + F * B) + F * D * F)


_HABLE_F_WHITE = _hable_f(HABLE_W)


def _hable(x: np.ndarray) -> np.ndarray:
    return _hable_f(x) / _HABLE_F_WHITE


def _rrt_odt_fit(v: np.ndarray) -> np.ndarray:
    a = v * (v + 0.0245786) - 0.000090537
    b = v * (0.983729 * v + 0.4329510) + 0.238081
    return a / b


def _aces_rgb(x: np.ndarray) -> np.ndarray:
    dtype = x.dtype
    v = _rrt_odt_fit(x @ ACES_INPUT.T.astype(dtype))
    return v @ ACES_OUTPUT.T.astype(dtype)


def _aces_planes(planes: np.ndarray) -> np.ndarray:
    """Hill's fit on (3, H, W) float32 planes (unclipped)."""
    flat = planes.reshape(3, -1)
    v = _rrt_odt_fit(ACES_INPUT.astype(np.float32) @ flat)
    return (ACES_OUTPUT.astype(np.float32) @ v).reshape(planes.shape)


def tonemap_reinhard2002(x, white: float | None = None) -> np.ndarray:
    """Reinhard et al. 2002: ``L / (1 + L)`` (eq. 3), or with a white point ``L_white``
    ``L (1 + L / L_white²) / (1 + L)`` (eq. 4), which maps ``L_white`` to 1.

    x : any shape, scaled scene luminance (or channel values) ≥ 0. Returns [0, 1], same shape.
    """
    if white is not None and not white > 0:
        raise ValueError(f"the Reinhard white point must be positive, got {white}")
    return np.clip(_reinhard(_clean(x), white), 0.0, 1.0)


def tonemap_hable(x) -> np.ndarray:
    """Hable's Uncharted 2 filmic curve ``F(x) / F(W)``, W = 11.2, so that 11.2 maps to 1.

    x : any shape, ≥ 0 (Hable applies it to 2× the exposed colour; `ToneMapper` does too).
    Returns [0, 1], same shape; values above W clip to 1.
    """
    return np.clip(_hable(_clean(x)), 0.0, 1.0)


def tonemap_aces(x) -> np.ndarray:
    """Stephen Hill's fitted ACES RRT + sRGB ODT (not Narkowicz 2015's luminance-only fit).

    ``ACES_OUTPUT · RRTAndODTFit(ACES_INPUT · rgb)``, clipped: the input matrix goes from
    linear sRGB/BT.709 to ACES AP1 with the RRT's saturation, the output matrix back with the
    ODT's. Scene 0.18 grey maps to 0.106 and the curve reaches 1 near 25.7.

    x : (..., 3) linear BT.709 RGB (a colour operator: the matrices mix the channels).
    Returns (..., 3) display-linear BT.709 in [0, 1].
    """
    return np.clip(_aces_rgb(_clean(_rgb(x))), 0.0, 1.0)


def tonemap_mulaw(x, mu: float = MU) -> np.ndarray:
    """μ-law ``log(1 + μx) / log(1 + μ)`` on x clipped to [0, 1]: `color.mu_law`, the curve of
    `hdrvid.metrics` too.

    x : any shape, on the absolute hdrvid scale. Returns [0, 1], same shape.
    """
    return mu_law(x, mu)


# --- transfer functions --------------------------------------------------------------------------

def oetf_srgb(x) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding (inverse EOTF): display-linear [0, 1] -> R'G'B' [0, 1].

    ``12.92 x`` for x ≤ 0.0031308, else ``1.055 x^(1/2.4) − 0.055``; input clipped to [0, 1].
    """
    x = _clean(x, 1.0)
    v = np.power(x, 1 / 2.4, out=np.empty_like(x))
    v *= 1.055
    v -= 0.055
    # select by multiplying with the 0/1 mask: exact, and unlike a masked ufunc or np.where
    # not twice as slow when the mask is noisy (dark, grainy areas)
    low = np.less_equal(x, 0.0031308, out=np.empty(x.shape, bool))
    linear = np.multiply(x, 12.92, out=x)
    linear *= low
    v *= np.logical_not(low, out=low)
    v += linear
    return np.clip(v, 0.0, 1.0, out=v)[()]


def eotf_inverse_bt1886(x, gamma: float = 2.4) -> np.ndarray:
    """BT.1886 inverse EOTF with black level 0 and white 1: ``V = L^(1/γ)``, γ = 2.4.

    x : display-linear luminance or RGB in [0, 1] (clipped). Returns code values in [0, 1],
    the R'G'B' that SDR BT.709 video is encoded with here.
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return _clean(x, 1.0) ** (1 / gamma)


def eotf_st2084(n) -> np.ndarray:
    """SMPTE ST 2084 (PQ) EOTF: code value N in [0, 1] -> luminance in cd/m² (0 … 10,000).

    ``10000 · (max(N^(1/m2) − c1, 0) / (c2 − c3 N^(1/m2)))^(1/m1)``; N is clipped to [0, 1].
    """
    e = _clean(n, 1.0)
    np.power(e, 1 / PQ_M2, out=e)
    y = np.subtract(e, PQ_C1, out=np.empty_like(e))
    np.fmax(y, 0, out=y)
    e *= -PQ_C3
    e += PQ_C2
    y /= e
    np.power(y, 1 / PQ_M1, out=y)
    y *= PQ_PEAK
    return y[()]


def eotf_inverse_st2084(nits) -> np.ndarray:
    """SMPTE ST 2084 (PQ) inverse EOTF: luminance in cd/m² -> code value N in [0, 1].

    ``N = ((c1 + c2 Y^m1) / (1 + c3 Y^m1))^m2`` with Y = nits / 10000 clipped to [0, 1]
    (0 cd/m² gives c1^m2 ≈ 7.3e-7, as the standard's formula does).
    """
    y = _clean(nits, PQ_PEAK)
    y *= 1 / PQ_PEAK
    np.power(y, PQ_M1, out=y)
    n = np.multiply(y, PQ_C2, out=np.empty_like(y))
    n += PQ_C1
    y *= PQ_C3
    y += 1
    n /= y
    np.power(n, PQ_M2, out=n)
    return n[()]


def oetf_hlg(e) -> np.ndarray:
    """ITU-R BT.2100 HLG OETF: scene-linear E in [0, 1] (clipped) -> signal E' in [0, 1].

    ``sqrt(3E)`` for E ≤ 1/12, else ``a ln(12E − b) + c``. Scene-referred: no OOTF is applied
    (the display applies it, with its own peak luminance).
    """
    e = _clean(e, 1.0)
    root = np.sqrt(3 * e)
    log = HLG_A * np.log(np.fmax(12 * e - HLG_B, TINY)) + HLG_C
    return np.where(e <= 1 / 12, root, log)[()]


def oetf_inverse_hlg(signal) -> np.ndarray:
    """ITU-R BT.2100 HLG inverse OETF: signal E' in [0, 1] (clipped) -> scene-linear E in [0, 1].

    ``E'² / 3`` for E' ≤ 1/2, else ``(exp((E' − c) / a) + b) / 12``.
    """
    v = _clean(signal, 1.0)
    square = v * v / 3
    exp = (np.exp((v - HLG_C) / HLG_A) + HLG_B) / 12
    return np.where(v <= 0.5, square, exp)[()]


def content_light_level(nits_rgb) -> tuple[float, float]:
    """One frame's light levels as CTA-861.3 defines them, in cd/m².

    nits_rgb : (..., 3) linear RGB in cd/m² (NaN and negative values count as 0, values above
        10,000 as 10,000: PQ cannot carry more).

    Returns
    -------
    (max over pixels of max(R, G, B), mean over pixels of max(R, G, B)): this frame's
    contribution to MaxCLL and its frame-average light level; MaxFALL is the maximum of the
    latter over frames (taken by the caller).
    """
    rgb = _clean(_rgb(nits_rgb), PQ_PEAK)
    if rgb.size == 0:
        raise ValueError("content_light_level: the frame has no pixels")
    max_rgb = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    return float(max_rgb.max()), float(max_rgb.mean(dtype=np.float64))


# --- the operators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Operator:
    """A tone-mapping operator as `ToneMapper` applies it: ``curve(x, white)``, its 1-D curve on
    key-scaled clean values (clipped to [0, 1] by the mapper; ``white`` is Reinhard's white
    point); ``help``, a few words for --help; ``keyed``: the frame is first scaled so that its
    log-average meets the key (not μ-law, which works on the absolute hdrvid scale);
    ``bias_stops``, an exposure its author adds; ``colour``, a form mixing the channels for
    preserve="channels" on (3, H, W) planes (None: the curve on each channel)."""

    curve: Callable[[np.ndarray, float | None], np.ndarray]
    help: str
    keyed: bool = True
    bias_stops: float = 0.0
    colour: Callable[[np.ndarray], np.ndarray] | None = None


# Every operator, in the order the CLI lists them: a new one is one entry here.
OPERATORS: dict[str, Operator] = {
    "reinhard": Operator(_reinhard, "Reinhard 2002, L / (1 + L): soft, low contrast"),
    "hable": Operator(lambda x, white: _hable(x), "Hable's filmic curve (Uncharted 2): a "
                      "film's toe and shoulder", bias_stops=math.log2(HABLE_EXPOSURE_BIAS)),
    # on luminance, grey in is grey out: both of Hill's matrices have rows summing to 1
    "aces": Operator(lambda x, white: _rrt_odt_fit(x), "Hill's fit of the ACES RRT and sRGB "
                     "ODT: contrasty, saturated", colour=_aces_planes),
    "mu-law": Operator(lambda x, white: mu_law(x, MU), "μ-law (μ = 5000) on the absolute "
                       "scale, no exposure key: the PSNR-T metric's curve", keyed=False),
    "exposure": Operator(lambda x, white: np.minimum(x, 1), "a plain exposure, clipped at 1"),
}


def operators_help() -> str:
    """One line per operator, for --help: ``name: what it does``."""
    return "; ".join(f"{name}: {op.help}" for name, op in OPERATORS.items())


# --- per-clip tone mapper ------------------------------------------------------------------------

@dataclass(frozen=True)
class ToneMapOptions:
    """How `ToneMapper` maps linear HDR to display-linear SDR.

    operator : a name in `OPERATORS` (each entry says what its curve does).
    exposure : extra stops applied before the curve (every operator).
    key : the smoothed log-average luminance is scaled to this value (Reinhard's a).
    white : Reinhard's L_white in units of the scaled image; None: eq. 3 (no white point).
    time_constant : seconds; the log key follows the frames' keys with this exponential
        smoothing; 0 = per frame.
    preserve : "luminance": the curve maps luminance and RGB is scaled by the ratio (hue kept);
        a pixel with a channel above 1 is then desaturated toward the grey of the same
        luminance until its largest channel is 1. "channels": the curve maps R, G and B
        independently (for "aces": Hill's full fit with its matrices).
    """

    operator: str = DEFAULT_OPERATOR
    exposure: float = 0.0
    key: float = 0.18
    white: float | None = None
    time_constant: float = 1.0
    preserve: str = "luminance"

    def __post_init__(self):
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown tone-mapping operator {self.operator!r}; choose one of "
                             f"{', '.join(OPERATORS)}")
        if self.preserve not in PRESERVE_MODES:
            raise ValueError(f"unknown preserve mode {self.preserve!r}; choose one of "
                             f"{', '.join(PRESERVE_MODES)}")
        if not (math.isfinite(self.key) and self.key > 0):
            raise ValueError(f"the key must be a positive number, got {self.key}")
        if not math.isfinite(self.exposure):
            raise ValueError(f"the exposure must be a finite number of stops, got {self.exposure}")
        if not (math.isfinite(self.time_constant) and self.time_constant >= 0):
            raise ValueError(f"the time constant must be ≥ 0 seconds, got {self.time_constant}")
        if self.white is not None and not (math.isfinite(self.white) and self.white > 0):
            raise ValueError(f"the Reinhard white point must be positive, got {self.white}")


@dataclass(frozen=True)
class SequenceKey:
    """A whole sequence's exposure for the tone mapper: its log-average luminance (Reinhard's
    eq. 1 over every frame) and the key ``a`` it is scaled to."""

    log_average: float
    key: float = MID_GREY

    @property
    def stops(self) -> float:
        """The exposure change it makes, in stops (before an operator's own bias)."""
        return math.log2(self.key / self.log_average)


def sequence_key(frames: Iterable[np.ndarray], longest_exposure: float | None = None
                 ) -> SequenceKey:
    """One exposure for a whole sequence (or a sample of its frames), so it cannot flicker.

    The log-average of the frames' pooled luminance is scaled to a key ``a`` from Reinhard's
    automatic estimate (2002 JGT, eq. 4): ``0.18 · 4^k``, where ``k`` places the log-average
    between the log of the darkest and the brightest luminance (1st and 99.9th percentiles:
    lamps are small). A low-key scene (a dim room lit by a few lamps: most pixels near the
    darkest) gets a key down to 0.045, so its background stays dark and its noise unlifted
    instead of being raised to middle grey; other scenes keep 0.18.

    longest_exposure: what the longest exposure of the clip multiplied these values by (its
    relative time on the hdrvid scale). The camera exposed that frame for the scene; when even
    it showed the log-average below middle grey, the scene is dim, and the key is no higher
    than that frame showed it (the merge adds range, not light), down to 3 stops below middle
    grey.
    """
    samples = []
    for frame in frames:
        step = max(1, min(frame.shape[:2]) // KEY_PIXELS)
        with np.errstate(invalid="ignore", over="ignore"):
            y = luminance_bt709(np.asarray(frame)[::step, ::step]).ravel()
        samples.append(y[np.isfinite(y) & (y >= 0)])
    y = np.concatenate(samples) if samples else np.zeros(0, np.float32)
    if y.size == 0:
        return SequenceKey(KEY_FLOOR)
    log_average = log_average_luminance(np.repeat(y[:, None], 3, axis=1))
    key = MID_GREY
    low, high = (max(float(v), KEY_FLOOR) for v in np.percentile(y, [1.0, 99.9]))
    if high > low * 2:  # else a flat sequence: nothing to place the average between
        k = (2 * math.log2(log_average) - math.log2(low) - math.log2(high)) / math.log2(high / low)
        key *= 4.0 ** min(k, 0.0)
    if longest_exposure is not None:
        key = min(key, log_average * longest_exposure)
    return SequenceKey(log_average, max(key, MID_GREY / 8))


class ToneMapper:
    """Stateful, one per clip: carries the smoothed key across frames, or, given ``sequence``,
    applies that one exposure to every frame (``time_constant`` is then unused)."""

    def __init__(self, options: ToneMapOptions = ToneMapOptions(),
                 sequence: SequenceKey | None = None):
        self.options = options
        self.sequence = sequence
        self._log_key: float | None = None
        self._time: float | None = None
        self._keys: list[float] = []

    @property
    def key_history(self) -> list[float]:
        """The smoothed keys used so far, one per frame (recorded for "mu-law" too)."""
        return list(self._keys)

    def __call__(self, hdr: np.ndarray, time: float | None = None) -> np.ndarray:
        """hdr float (H, W, 3) linear Rec.709 (hdrvid scale) -> display-linear Rec.709 float32
        (H, W, 3) in [0, 1] (no OETF applied: the caller encodes with `oetf_srgb` for PNG or
        `eotf_inverse_bt1886` for BT.709 video).

        ``time`` in seconds (the frame's timestamp; variable frame rates allowed); None = 1/24 s
        after the previous call. The key is smoothed in the log domain:
        ``log_key += (1 − exp(−dt / time_constant)) · (log(current) − log_key)``; the first frame
        sets it, and a time that goes backwards leaves it unchanged (dt = 0).
        """
        hdr = np.asarray(hdr)
        if hdr.ndim != 3 or hdr.shape[2] != 3 or hdr.size == 0:
            raise ValueError(f"expected an (H, W, 3) frame, got shape {hdr.shape}")
        if self.sequence is None:
            gain = self._gain(self._smoothed_key(_frame_key(hdr), time), self.options.key)
        else:
            self._keys.append(self.sequence.log_average)
            gain = self._gain(self.sequence.log_average, self.sequence.key)
        planes = _to_planes(hdr, gain)
        colour = OPERATORS[self.options.operator].colour
        if self.options.preserve == "luminance":
            self._map_luminance(planes)
        elif colour is not None:
            planes = colour(planes)
        else:
            planes = self._curve(planes)
        return _to_frame(planes)

    def _smoothed_key(self, current: float, time: float | None) -> float:
        if time is None:
            time = 0.0 if self._time is None else self._time + FRAME_DURATION
        elif not math.isfinite(time):
            raise ValueError(f"frame time must be a finite number of seconds, got {time}")
        if self._log_key is None:
            self._log_key = math.log(current)
        else:
            dt = max(time - self._time, 0.0)
            tau = self.options.time_constant
            alpha = 1.0 if tau == 0 else -math.expm1(-dt / tau)
            self._log_key += alpha * (math.log(current) - self._log_key)
        self._time = float(time)
        self._keys.append(math.exp(self._log_key))
        return self._keys[-1]

    def _gain(self, log_average: float, key: float) -> float:
        """Linear factor from the hdrvid scale to the curve's input (Reinhard's eq. 2)."""
        operator = OPERATORS[self.options.operator]
        stops = self.options.exposure
        if operator.keyed:
            stops += math.log2(key / log_average)
        stops += operator.bias_stops
        return 2.0 ** min(max(stops, -126.0), 100.0)  # stays a normal float32

    def _curve(self, x: np.ndarray) -> np.ndarray:
        """The operator's 1-D curve on clean values (any shape) -> [0, 1]."""
        y = OPERATORS[self.options.operator].curve(x, self.options.white)
        return np.clip(y, 0.0, 1.0, out=y)

    def _map_luminance(self, planes: np.ndarray) -> None:
        """Scale RGB by curve(Y) / Y, then bring channels above 1 back toward grey; in place."""
        y = (np.array(BT709_Y, np.float32) @ planes.reshape(3, -1)).reshape(planes.shape[1:])
        y_display = self._curve(y)
        planes *= y_display / np.fmax(y, TINY)
        if planes.max() > 1:
            _desaturate_above_one(planes, y_display)


def _desaturate_above_one(planes: np.ndarray, y: np.ndarray) -> None:
    """Mix each pixel whose largest channel m exceeds 1 with the grey (Y, Y, Y) of its own
    luminance, ``Y + t (rgb − Y)`` with ``t = (1 − Y) / (m − Y)``, so that its largest channel
    becomes 1 while its luminance and hue angle stay (t = 1 elsewhere). In place; planes
    (3, H, W) ≥ 0 with luminance y (H, W) in [0, 1]."""
    m = np.maximum(planes[0], planes[1])
    np.maximum(m, planes[2], out=m)
    t = np.subtract(m, y, out=m)  # ≥ 0: a weighted mean is at most the largest channel
    np.fmax(t, TINY, out=t)
    np.divide(1 - y, t, out=t)
    np.minimum(t, 1, out=t)
    planes *= t
    planes += (1 - t) * y


# The tone mapper works on planar float32 (3, H, W) arrays: per-channel operations on
# interleaved (H, W, 3) data are strided and several times slower.

def _to_planes(hdr: np.ndarray, gain: float) -> np.ndarray:
    """(H, W, 3) any float -> gain × hdr as float32 (3, H, W), NaN and negatives 0, +inf LARGE."""
    planes = np.empty((3, *hdr.shape[:2]), np.float32)
    for c in range(3):
        np.multiply(hdr[..., c], np.float32(gain), out=planes[c], casting="unsafe")
    np.fmax(planes, 0, out=planes)
    return np.fmin(planes, LARGE, out=planes)


def _to_frame(planes: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (H, W, 3) float32 clipped to [0, 1]."""
    frame = np.empty((*planes.shape[1:], 3), np.float32)
    for c in range(3):
        np.clip(planes[c], 0.0, 1.0, out=frame[..., c])
    return frame


def _frame_key(hdr: np.ndarray) -> float:
    """`log_average_luminance` of a frame, on every n-th pixel of every n-th row (n = 4 at
    1080p)."""
    step = max(1, min(hdr.shape[:2]) // KEY_PIXELS)
    return log_average_luminance(hdr[::step, ::step])

