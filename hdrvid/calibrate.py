"""Camera-response recovery: the inverse response f (code -> linear light) from the footage itself
(`estimate_from_video`, behind ``--input-transfer auto``) (still stacks: `hdrvid.stills`).

Video: frames of an alternating clip see the same scene points at known exposure ratios. Pairs
of neighbouring frames, from places spread over the clip, are aligned with DIS optical flow
(after matching their brightness histograms, which needs no curve), and every pixel well
exposed in both frames of a pair gives a point (v_short, v_long) of the pair's comparagram. The
robust middle of each comparagram row and column then gives an equation

    ln f(v_long) − ln f(v_short) = ln(t_long / t_short)

which is linear in the coefficients of `hdrvid.response.SlopeCurve` (the model, and why, is
described there). Weighted, iteratively reweighted least squares with a weak pull towards
gamma 2.2 solves them; the weighted residual of the equations (in stops) and how much of the
code range the points cover give the estimate's confidence. Too few points, a curve that is not
increasing, or frames that do not differ in exposure raise `CalibrationError`; the conversion
then falls back to gamma 2.2 with a warning (`resolve_auto`).

The curve and the exposure ratios trade off exactly (f^γ with ratios R^γ explains the frames
as well as f with R; Grossberg & Nayar, 2003), so the ratios are taken as given or as
detected, never fitted together with the curve: detected ratios carry the gamma-2.2 assumption
of the detector into the curve, which the estimate reports.

Footage on a black floor (film base, a pedestal) gets a black level under the curve
(`black_floor`; docs/response.md, "Black floor").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from hdrvid.color import luma_weights
from hdrvid.errors import InputError
from hdrvid.exposure import ExposurePattern
from hdrvid.flow import dis_flow
from hdrvid.response import GAMMA, SlopeCurve
from hdrvid.video import VideoInfo, frame_timestamps, read_frames

DEGREE = 4  # slope polynomial c0..c4: within 0.02 stop of sRGB, film and log curves above code 0.1
ANALYSIS_WIDTH = 480  # frames are analysed at most this wide: plenty of pixels, quick flow
SEGMENTS = 8  # places in the video that pairs of frames are taken from
LOW, HIGH = 0.06, 0.94  # codes trusted in both frames: above the noise floor, below clipping
# a row conditioned on the short frame, whose codes are the noisier, starts higher: noise in
# the code a row is conditioned on biases its median partner (regression to the mean)
SHORT_LOW = 0.15
# a row's median partner may be darker: noise spreads a partner without biasing its median, and
# the shadows of sRGB and log curves (slope near 1) are only seen there
PARTNER_LOW = 0.04
AVERAGE = 3  # pairs are averaged over AVERAGE×AVERAGE pixels (noise is what biases rows) ...
FLAT = 0.3  # ... where both frames' luma varies by less than this fraction of its level
BINS = 256  # comparagram resolution (the 8-bit code step)
MIN_ROW_PIXELS = 20  # a comparagram row or column needs this many pixels to give an equation
MIN_EQUATIONS = 24
MIN_LIT_PIXELS = 200  # a pair must have this many well-lit pixels to tell if it differs
MIN_COVERAGE = 0.35  # the equations must span this much of the trusted code range
PRIOR = 1e-5  # weight of the pull towards gamma 2.2, relative to the data's total weight
SMOOTH = 1e-6  # weight of the pull towards a straight log-log slope (same units)
SMOOTH_OUTSIDE = 1e-5  # the same above the codes the data covers
# (SMOOTH, SMOOTH_OUTSIDE) pairs tried in turn, loosest first (see fit_curve); the last is kept
EXTRAPOLATION = ((1e-7, 1e-7), (SMOOTH, SMOOTH_OUTSIDE))
# gamma 2.2 is kept when its median error over the equations is within GAMMA_KEEP times the
# fit's plus GAMMA_SLACK stop (benchmark gamma clips: up to 2.9 times; other curves: 4.8 and up)
GAMMA_KEEP, GAMMA_SLACK = 3.5, 0.01
MIN_SLOPE = 0.3  # a fitted log-log slope below this anywhere is no camera curve
GAMMA22 = SlopeCurve((GAMMA,) + (0.0,) * DEGREE)
# the largest difference (stops, over codes 0.1-0.9) from gamma 2.2 that `info` still calls
# gamma 2.2: estimates on true gamma-2.2 clips stay well inside it (docs/response.md)
GAMMA22_TOLERANCE = 0.25
# a black floor (film base, a scanner's or camera's pedestal): the darkest codes of the short
# and the long frames of a pair coincide instead of scaling with the exposure
FLOOR_QUANTILE = 0.02  # the darkest codes: this quantile of each channel's unclipped pixels
FLOOR_MIN = 0.02  # every channel's floor at least this far above 0 ...
FLOOR_SAME = 0.01  # ... and the long frames' floor at most this far above the short frames'
# the floor's codes stand for all the light too dark to record: the curve's black level is set
# so that the floor code lies FLOOR_DEPTH stops below code FLOOR_REFERENCE × floor. A curve
# reaching 0 at the floor itself maps those pixels to nothing; one that ignores the floor maps
# them several stops too bright (Memorial: docs/response.md, "Black floor")
FLOOR_DEPTH, FLOOR_REFERENCE = 4.5, 2.5


class CalibrationError(InputError):
    """The response cannot be estimated from this input (too few usable pixels, no exposure
    difference, a curve that is not increasing)."""


@dataclass
class Estimate:
    """A recovered inverse response and how well the data supported it."""

    curve: SlopeCurve
    residual_stops: float  # weighted RMS of the ratio equations, in stops
    coverage: float  # fraction of the trusted code range the equations span
    equations: int
    source: str  # "video", "still stack"
    notes: list[str] = field(default_factory=list)  # caveats, for the user's warnings
    kept_gamma: bool = False  # gamma 2.2 explained the data as well as a fitted curve

    @property
    def confidence(self) -> float:
        """In [0, 1]: falls with the residual (0 at half a stop) and with a narrow coverage."""
        if not math.isfinite(self.residual_stops):  # no fit: the floor alone was measured
            return 0.0
        return float(np.clip(1 - 2 * self.residual_stops, 0, 1) * min(1.0, self.coverage / 0.7))

    def samples(self, codes: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
                ) -> list[tuple[float, float]]:
        """(code, linear) points of the curve, for reports."""
        return [(float(v), float(f)) for v, f in zip(codes, self.curve.linear(np.array(codes)))]

    def gamma22_difference(self) -> float:
        """Largest |log2 f(v) − log2 v^2.2| over codes 0.1-0.9, in stops."""
        v = np.linspace(0.1, 0.9, 81)
        return float(np.max(np.abs(self.curve.log_linear(v) - GAMMA * np.log(v))) / math.log(2))

    def looks_like_gamma22(self) -> bool:
        return not self.curve.black and self.gamma22_difference() <= GAMMA22_TOLERANCE

    def as_dict(self) -> dict:
        return {"model": "slope", "spec": self.curve.spec,
                "coefficients": list(self.curve.coefficients),
                "samples": [[round(v, 3), round(f, 5)] for v, f in self.samples()],
                "residual_stops": round(self.residual_stops, 4)
                if math.isfinite(self.residual_stops) else None,
                "black": round(self.curve.black, 4),
                "coverage": round(self.coverage, 3), "equations": self.equations,
                "confidence": round(self.confidence, 3), "source": self.source,
                "gamma22_difference_stops": round(self.gamma22_difference(), 3),
                "kept_gamma22": self.kept_gamma,
                "notes": self.notes}

    def table(self, size: int = 256) -> str:
        """The curve as a two-column ``code linear`` table that ``--input-transfer FILE`` reads."""
        codes = np.linspace(0.0, 1.0, size)
        rows = "\n".join(f"{v:.6f} {f:.8g}" for v, f in zip(codes, self.curve.linear(codes)))
        return (f"# inverse camera response from hdrvid calibrate ({self.source}): code linear\n"
                f"# {self.curve.spec}; residual {self.residual_stops:.3f} stops, confidence "
                f"{self.confidence:.2f}\n{rows}\n")


# --- comparagrams --------------------------------------------------------------------------

class Comparagram:
    """Joint histograms of (v_short, v_long) per exposure ratio, from any number of pairs."""

    def __init__(self) -> None:
        self.histograms: dict[float, np.ndarray] = {}
        # per ratio, the sum of the codes in each bin, short and long: a row stands for the
        # mean of its codes, not its bin's centre (8-bit codes k/255 sit off the centres, and
        # studio-range video has other steps)
        self.sums: dict[float, np.ndarray] = {}

    def add(self, short: np.ndarray, long: np.ndarray, log_ratio: float,
            valid: np.ndarray | None = None) -> None:
        """Pixels of two aligned (H, W, 3) frames whose exposure differs by ``log_ratio``
        (natural log of t_long / t_short > 0); ``valid`` (H, W) masks out misaligned pixels."""
        key = round(log_ratio, 4)
        # every code counts, clipped and black ones too: a row's median is then that of the
        # whole distribution of partners, not of what is left after cutting one tail off
        keep = np.ones(short.shape, bool) if valid is None else \
            np.broadcast_to(valid[..., None], short.shape)
        index_s = np.clip((short[keep] * BINS).astype(np.intp), 0, BINS - 1)
        index_l = np.clip((long[keep] * BINS).astype(np.intp), 0, BINS - 1)
        counts = np.bincount(index_s * BINS + index_l, minlength=BINS * BINS).reshape(BINS, BINS)
        sums = np.stack([np.bincount(index_s, short[keep], BINS),
                         np.bincount(index_l, long[keep], BINS)])
        self.histograms[key] = self.histograms.get(key, 0) + counts
        self.sums[key] = self.sums.get(key, 0) + sums

    def equations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(v_short, v_long, ln ratio, pixel count) of each usable row and column.

        Each row (a short code) gives the median long code, and each column the median short
        code: noise in the code that is binned biases its partner towards the middle of the
        histogram, in opposite directions for rows and columns, so using both cancels most of it.
        """
        out: list[tuple[float, float, float, float]] = []
        for key, counts in self.histograms.items():
            for transpose in (False, True):
                grid = counts.T if transpose else counts
                totals = grid.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    means = self.sums[key] / np.stack([counts.sum(axis=1), counts.sum(axis=0)])
                own, other = (means[1], means[0]) if transpose else (means[0], means[1])
                trusted = (own > (LOW if transpose else SHORT_LOW)) & (own < HIGH)
                for i in np.flatnonzero((totals >= MIN_ROW_PIXELS) & trusted):
                    cumulative = np.cumsum(grid[i])
                    j = int(np.searchsorted(cumulative, cumulative[-1] / 2))
                    before = cumulative[j - 1] if j else 0
                    # the median bin's share below the median, between its neighbours' means
                    share = (cumulative[-1] / 2 - before) / grid[i, j]
                    partner = _within_bin(other, j, share)
                    if not PARTNER_LOW < partner < HIGH:  # the median is clipped or noise
                        continue
                    pair = (partner, own[i]) if transpose else (own[i], partner)
                    out.append((*pair, key, float(totals[i])))
        if not out:
            empty = np.zeros(0)
            return empty, empty, empty, empty
        return tuple(np.array(column) for column in zip(*out))


def _within_bin(means: np.ndarray, j: int, share: float) -> float:
    """A code ``share`` of the way through bin j: between the midpoints to its occupied
    neighbours' mean codes (the bin's own mean when it has none)."""
    centre = means[j]
    lower = next((means[k] for k in range(j - 1, -1, -1) if np.isfinite(means[k])), None)
    upper = next((means[k] for k in range(j + 1, len(means)) if np.isfinite(means[k])), None)
    start = centre - (centre - lower) / 2 if lower is not None else centre
    stop = centre + (upper - centre) / 2 if upper is not None else centre
    return float(start + share * (stop - start))


# --- the fit -------------------------------------------------------------------------------

def _basis(v: np.ndarray) -> np.ndarray:
    """ln f(v) = basis(v) @ coefficients (see SlopeCurve.log_linear)."""
    return np.stack([np.log(v)] + [(v**k - 1) / k for k in range(1, DEGREE + 1)], axis=-1)


def _priors(top: float, smooth: float = SMOOTH, outside: float = SMOOTH_OUTSIDE
            ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and targets appended to a fit's weighted equations (whose weights sum to 1).

    Weakly towards gamma 2.2, and towards a slope that changes linearly with the code, which
    decides the curve where the data says little. Above ``top``, the highest code the data
    covers, it is held more firmly: the curve's extrapolation to f(1) = 1 sets the scale of
    everything below, and a polynomial left free there bends.
    """
    grid = np.linspace(0.0, 1.0, 41)
    # the slope's second derivative: a slope that rises steadily (film) is not penalised
    bend = np.stack([np.zeros_like(grid)] * 2 + [k * (k - 1) * grid**(k - 2)
                                                 for k in range(2, DEGREE + 1)], 1)
    strength = np.where(grid > top, outside, smooth) / len(grid)
    rows = np.vstack([math.sqrt(PRIOR) * np.eye(DEGREE + 1), np.sqrt(strength)[:, None] * bend])
    targets = np.concatenate([math.sqrt(PRIOR) * np.array(GAMMA22.coefficients),
                              np.zeros(len(grid))])
    return rows, targets


def _solve(design: np.ndarray, log_ratio: np.ndarray, weight: np.ndarray, top: float,
           smooth: float, outside: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients, residuals and Huber weights of the weighted ratio equations with priors."""
    prior_rows, prior_target = _priors(top, smooth, outside)
    robust = np.ones_like(weight)
    for _ in range(6):  # iteratively reweighted: Huber weights from the residuals' spread
        root = np.sqrt(weight * robust)
        a = np.vstack([design * root[:, None], prior_rows])
        b = np.concatenate([log_ratio * root, prior_target])
        coefficients = np.linalg.lstsq(a, b, rcond=None)[0]
        residual = design @ coefficients - log_ratio
        scale = 1.4826 * float(np.median(np.abs(residual))) + 1e-4
        robust = np.minimum(1.0, 1.5 * scale / np.maximum(np.abs(residual), 1e-12))
    return coefficients, residual, robust


def fit_curve(v_short: np.ndarray, v_long: np.ndarray, log_ratio: np.ndarray,
              counts: np.ndarray, source: str = "video") -> Estimate:
    """Fit a SlopeCurve to ratio equations; CalibrationError when the data cannot support one."""
    usable = (v_short > 0) & (v_long > v_short) & (log_ratio > 0)
    if usable.sum() < MIN_EQUATIONS:
        raise CalibrationError(
            f"only {int(usable.sum())} usable comparagram points (need {MIN_EQUATIONS}): too few "
            "pixels are well exposed in both frames of a pair, or the frames do not differ in "
            "exposure")
    v_short, v_long = v_short[usable], v_long[usable]
    log_ratio, counts = log_ratio[usable], counts[usable]
    codes = np.concatenate([v_short, v_long])
    coverage = float((np.quantile(codes, 0.98) - np.quantile(codes, 0.02)) / (HIGH - LOW))
    if coverage < MIN_COVERAGE:
        raise CalibrationError(
            f"the usable pixels span only {coverage:.0%} of the code range (need "
            f"{MIN_COVERAGE:.0%}): the scene is too flat to recover a curve from")
    design = _basis(v_long) - _basis(v_short)
    # noise of a code becomes noise s(v)·σ/v in ln f: dark codes weigh less. A comparagram point
    # stands for many pixels, but neighbouring pixels share their compression error: the count
    # saturates rather than multiplying the weight.
    weight = counts / (counts + 200.0) / (1 / v_short**2 + 1 / v_long**2)
    weight /= weight.sum()
    top = float(np.quantile(codes, 0.99))
    # the top codes, which tie the curve to f(1) = 1, are extrapolated. A firm hold there loses
    # film's steepening slope, so a loose fit is tried first and kept where it is increasing
    # and its slope keeps rising past the data; where it levels off or falls (sRGB-like curves)
    # the loose polynomial wanders above the data and the firm hold is the better guess
    for smooth, outside in EXTRAPOLATION:
        coefficients, residual, robust = _solve(design, log_ratio, weight, top, smooth, outside)
        curve = SlopeCurve(tuple(float(c) for c in coefficients))
        if curve.is_monotone(MIN_SLOPE) and curve.slope(1.0) >= curve.slope(top):
            break
    rms = math.sqrt(float(np.sum(weight * robust * residual**2) / np.sum(weight * robust)))
    # gamma 2.2 is kept when it explains the equations nearly as well as the fit: most footage
    # is gamma 2.2, and a fit's freedom then only adds its noise to the curve
    fitted = float(np.median(np.abs(residual)))
    assumed = float(np.median(np.abs(design @ np.array(GAMMA22.coefficients) - log_ratio)))
    if assumed <= GAMMA_KEEP * fitted + GAMMA_SLACK * math.log(2):
        rms = math.sqrt(float(np.sum(weight * (design @ np.array(GAMMA22.coefficients) -
                                               log_ratio) ** 2)))
        return Estimate(SlopeCurve((GAMMA,)), rms / math.log(2), coverage, int(usable.sum()),
                        source, kept_gamma=True)
    if not curve.is_monotone(MIN_SLOPE):
        raise CalibrationError(
            f"the fitted curve is not increasing ({curve.spec}): the frames do not support a "
            "camera curve; check the exposures (--exposures) or give the curve (--input-transfer)")
    return Estimate(curve, rms / math.log(2), coverage, int(usable.sum()), source)


# --- video ---------------------------------------------------------------------------------

def _analysis_size(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if w <= ANALYSIS_WIDTH:
        return frame
    size = (ANALYSIS_WIDTH, round(h * ANALYSIS_WIDTH / w))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array(luma_weights("bt601"), dtype=np.float32)


def _match_histogram(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` mapped so that its distribution matches ``target``'s (monotone; no curve
    needed): the brightness-matched image the flow is found on."""
    q = np.linspace(0, 1, 257)
    qs, qt = np.quantile(source, q), np.quantile(target, q)
    qs = qs + np.arange(len(q)) * 1e-7  # strictly increasing for np.interp
    return np.interp(source, qs, qt).astype(np.float32)


def align(short: np.ndarray, long: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``long`` warped onto ``short`` by DIS flow between their histogram-matched lumas, and an
    (H, W) mask of pixels that were inside the frame and whose matched lumas agree."""
    y_short, y_long = _luma(short), _luma(long)
    matched = _match_histogram(y_short, y_long)
    u8 = lambda y: np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)
    flow = dis_flow(u8(matched), u8(y_long))
    h, w = y_short.shape
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    coords = flow + np.stack([xs, ys], axis=-1)
    warped = cv2.remap(long, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (coords[..., 0] >= 0) & (coords[..., 0] <= w - 1) & \
             (coords[..., 1] >= 0) & (coords[..., 1] <= h - 1)
    # misaligned pixels (occlusions, flow errors) disagree with their neighbourhood's match
    misfit = cv2.blur(np.abs(matched - _luma(warped)), (5, 5))
    return warped, inside & (misfit < 0.03)


def pair_frames(info: VideoInfo, pattern: ExposurePattern, segments: int = SEGMENTS
                ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(short, long, ln ratio) for every pair of neighbouring frames of ``segments`` runs of
    period + 1 frames spread over the video, at analysis size."""
    span = pattern.period + 1
    count = info.frame_count
    stamps = None
    if count and count > span * segments:
        stamps = frame_timestamps(info.path)
        count = len(stamps) if stamps else count
        starts = np.unique(np.linspace(0, count - span, segments).round().astype(int))
    else:
        starts = np.arange(0, max(1, (count or span * segments) - span + 1), span)[:segments]
    pairs = []
    for start in starts:
        frames = read_frames(info.path, info.color, int(start) + span, int(start), stamps)
        for a, b in itertools.pairwise(frames):
            ta, tb = pattern.time(a.index), pattern.time(b.index)
            if ta == tb:
                continue
            (short, ts), (long, tl) = sorted([(a.rgb, ta), (b.rgb, tb)], key=lambda p: p[1])
            pairs.append((_analysis_size(short), _analysis_size(long), math.log(tl / ts)))
    return pairs


def _unclipped(rgb: np.ndarray, size: int = 3, margin: float = 0.015) -> np.ndarray:
    """(H, W) mask of pixels with no channel clipped at 1 in their size×size neighbourhood:
    video stores colour at half resolution, so a channel clipped in one pixel bends its
    neighbours' colours by amounts that depend on the exposure (grey pixels are unaffected)."""
    clipped = rgb.max(axis=-1) > 1 - margin
    return cv2.dilate(clipped.astype(np.uint8), np.ones((size, size), np.uint8)) == 0


def add_pair(gram: Comparagram, short: np.ndarray, long: np.ndarray, log_ratio: float,
             valid: np.ndarray) -> None:
    """Add an aligned pair to ``gram``: its pixels averaged over AVERAGE×AVERAGE neighbourhoods
    where both frames are flat there (averaging codes through a curve is exact only where
    they do not vary), away from clipped channels."""
    keep = valid & _unclipped(short, AVERAGE + 2) & _unclipped(long, AVERAGE + 2)
    if AVERAGE > 1:
        size = (AVERAGE, AVERAGE)
        flat = np.ones_like(keep)
        for frame in (short, long):
            y = _luma(frame)
            spread = np.sqrt(np.maximum(cv2.blur(y * y, size) - cv2.blur(y, size) ** 2, 0))
            flat &= spread < FLAT * np.maximum(cv2.blur(y, size), 0.05)
        short, long = cv2.blur(short, size), cv2.blur(long, size)
        keep &= flat
    gram.add(short, long, log_ratio, keep)


def estimate_from_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray, float]],
                        aligned: bool = False, source: str = "video") -> Estimate:
    """Estimate the curve from (short, long, ln ratio) frame pairs; ``aligned`` skips the flow
    (a static stack)."""
    if not pairs:
        raise CalibrationError("no pair of frames with different exposures to compare")
    gram = Comparagram()
    brighter = []  # per pair with enough well-lit pixels: the share that the longer brightens
    for short, long, log_ratio in pairs:
        warped, valid = (long, np.ones(short.shape[:2], bool)) if aligned else align(short, long)
        # the longer frame brightens every point that is well lit in the shorter one
        y_short, y_long = _luma(short)[valid], _luma(warped)[valid]
        lit = (y_short > SHORT_LOW) & (y_short < 0.9)
        if lit.sum() >= MIN_LIT_PIXELS:
            brighter.append(float(np.mean(y_long[lit] > y_short[lit] + 0.02)))
        add_pair(gram, short, warped, log_ratio, valid)
    if not brighter:
        raise CalibrationError("too few pixels are well exposed in the shorter frames (the "
                               "scene is too dark in them to compare)")
    if max(brighter) < 0.5:
        raise CalibrationError("the frames of each pair look the same: the video does not "
                               "alternate exposures (or is a still); give a curve with "
                               "--input-transfer instead")
    return fit_curve(*gram.equations(), source=source)


def black_floor(pairs: Sequence[tuple[np.ndarray, np.ndarray, float]]) -> float:
    """The code of a black floor the footage sits on, or 0 when it has none.

    A floor is a darkest code that does not move with the exposure: in every channel the
    longer frames' darkest pixels are as dark as the shorter frames', where scene content
    would be brighter by the ratio (or at 0, where the scene holds true black). Only pairs whose
    longer frame is the brighter on average count: frames that do not differ share every level."""
    floors = []
    for short, long, _ in pairs:
        keep = _unclipped(short) & _unclipped(long)  # also Debevec's blue borders
        if keep.sum() < MIN_LIT_PIXELS or _luma(long).mean() < _luma(short).mean() + FLOOR_SAME:
            continue
        floors.append([np.quantile(frame[keep], FLOOR_QUANTILE, axis=0) for frame in (short, long)])
    if not floors:
        return 0.0
    short, long = np.median(np.array(floors), axis=0)  # (3,) each: per channel
    if np.all(short >= FLOOR_MIN) and np.all(long <= short + FLOOR_SAME):
        return float(np.median(short))
    return 0.0


def _black_level(curve: SlopeCurve, floor: float) -> float:
    """The black level (0 to ``floor``) that puts the floor FLOOR_DEPTH stops below its
    reference code; 0 where the curve already reaches that deep."""
    def depth(black: float) -> float:
        f = replace(curve, black=black).linear(np.array([floor, FLOOR_REFERENCE * floor]))
        return math.log2(f[1] / f[0]) if f[0] > 0 else math.inf
    low, high = 0.0, floor
    if depth(low) >= FLOOR_DEPTH:
        return 0.0
    for _ in range(30):  # the depth grows with the black level: bisection
        middle = (low + high) / 2
        low, high = (middle, high) if depth(middle) < FLOOR_DEPTH else (low, middle)
    return round(low, 4)


def _on_floor(estimate: Estimate | None, floor: float, failure: str | None) -> Estimate:
    """``estimate``'s curve (gamma 2.2 where there is none) lifted onto the black floor."""
    black = _black_level(estimate.curve if estimate else GAMMA22, floor)
    note = (f"the footage sits on a black floor at code {floor:.3f} (film base or a pedestal): "
            f"the curve reaches black at {black:.3f}")
    if estimate is None:
        note += f"; {failure}, so gamma 2.2 is assumed above the floor"
        estimate = Estimate(GAMMA22, math.nan, 0.0, 0, "video", kept_gamma=True)
    estimate.curve = replace(estimate.curve, black=black)
    estimate.notes.append(note)
    return estimate


def estimate_from_video(info: VideoInfo, pattern: ExposurePattern) -> Estimate:
    """The inverse response of ``info``'s video whose exposures follow ``pattern``.

    Footage on a black floor whose curve cannot be fitted (the short frames hold nothing but
    the floor) still gets the floor, under gamma 2.2."""
    pairs = pair_frames(info, pattern)
    floor = black_floor(pairs)
    try:
        estimate = estimate_from_pairs(pairs)
    except CalibrationError as exc:
        if not floor:
            raise CalibrationError(
                f"{info.path}: cannot recover the camera response: {exc}") from exc
        estimate = _on_floor(None, floor, str(exc))
    else:
        if floor:
            estimate = _on_floor(estimate, floor, None)
    if pattern.source == "detected" and not estimate.looks_like_gamma22():
        estimate.notes.append(
            "the exposure ratios were detected assuming gamma 2.2, and a curve can only be "
            "recovered relative to its ratios; pass --exposures for an exact curve")
    return estimate


def resolve_auto(info: VideoInfo, pattern: ExposurePattern, warnings: list[str]
                 ) -> tuple[str, Estimate | None]:
    """``--input-transfer auto``: the estimated curve's ``slope:`` spec, or ``gamma2.2`` with a
    warning when the video does not support an estimate."""
    try:
        estimate = estimate_from_video(info, pattern)
    except CalibrationError as exc:
        warnings.append(f"{exc}; assuming gamma 2.2 instead")
        return "gamma2.2", None
    warnings += estimate.notes
    if estimate.kept_gamma and not estimate.curve.black:
        return "gamma2.2", estimate  # the models' own curve: nothing to re-encode
    return estimate.curve.spec, estimate
