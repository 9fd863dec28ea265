"""Camera responses: how decoded R'G'B' values map to linear light (numpy only).

Every supported model expects frames encoded with a pure 1/2.2 power (docs/conventions.md §1), so
footage with another response is linearised with its own curve and re-encoded with gamma 2.2
exactly once, before it reaches a model (`Response.to_gamma22`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the curves are defined in hdrvid.color; their names stay importable from here
from hdrvid.color import GAMMA, eotf_srgb, linearize_gamma22, oetf_gamma22  # noqa: F401
from hdrvid.errors import InputError

AUTO = "auto"  # --input-transfer auto: estimated from the video (hdrvid.calibrate.resolve_auto)


@dataclass(frozen=True)
class Response:
    """A camera response: ``name`` is gamma2.2, srgb, linear, or the path of a table file.

    ``table`` (for tabulated responses) holds (encoded, linear) samples, both ascending in [0, 1].
    """

    name: str = "gamma2.2"
    table: tuple[np.ndarray, np.ndarray] | None = None

    def linearize(self, ldr: np.ndarray) -> np.ndarray:
        """Encoded values in [0, 1] to linear light in [0, 1]."""
        if self.name == "gamma2.2":
            return linearize_gamma22(ldr)
        if self.name == "srgb":
            return eotf_srgb(ldr)
        if self.name == "linear":
            return np.clip(ldr, 0.0, 1.0)
        codes, linear = self.table
        return np.interp(ldr, codes, linear).astype(np.float32)

    def to_gamma22(self, ldr: np.ndarray) -> np.ndarray:
        """Re-encode frames with the models' gamma 2.2; the identity for gamma-2.2 input."""
        if self.name == "gamma2.2":
            return ldr
        return oetf_gamma22(self.linearize(ldr)).astype(np.float32)


# --- the estimated curves' model (hdrvid.calibrate fits it) -----------------------------------

SLOPE_PREFIX = "slope:"
BLACK_KEY = ";black="
TABLE_SIZE = 1024  # samples of a curve given by coefficients, finer than any 8- or 10-bit step


@dataclass(frozen=True)
class SlopeCurve:
    """An inverse camera response f (code v in [0, 1] -> linear light, f(1) = 1) whose log-log
    slope is a polynomial: ``d ln f / d ln v = c0 + c1·v + ... + cK·v^K``, so that

        ln f(v) = c0·ln v + Σ_k ck·(v^k − 1) / k.

    Why this family: every pure power is in it (gamma 2.2 is ``slope:2.2``; footage that is
    gamma 2.2 costs no model error), and so, closely, are the curves cameras use: sRGB and log
    profiles have a slope of about 1 in the shadows, film-like curves a slope that rises
    towards the highlights. ln f is linear in the coefficients, so the exposure-ratio equations
    ``ln f(v_long) − ln f(v_short) = ln(t_long / t_short)`` are a linear least-squares problem,
    weighted in the log domain where shadows count as much as highlights. f is monotone exactly
    where the slope is positive (checked on a grid), and f(1) = 1 by construction. Written as
    ``slope:c0,c1,...``, an ``--input-transfer`` value that reproduces the curve exactly.
    """

    coefficients: tuple[float, ...]
    # a black floor: codes at or below ``black`` are 0 and the curve above it runs over
    # (v − black) / (1 − black); ``;black=B`` in the spec (docs/response.md, "Black floor")
    black: float = 0.0

    def log_linear(self, v: np.ndarray) -> np.ndarray:
        """ln f(v) for codes v in (0, 1]."""
        v = np.asarray(v, dtype=np.float64)
        c = self.coefficients
        return c[0] * np.log(v) + sum(c[k] * (v**k - 1) / k for k in range(1, len(c)))

    def slope(self, v: np.ndarray) -> np.ndarray:
        """d ln f / d ln v at codes v."""
        v = np.asarray(v, dtype=np.float64)
        return sum(ck * v**k for k, ck in enumerate(self.coefficients))

    def is_monotone(self, minimum: float = 0.05) -> bool:
        """Whether the slope stays above ``minimum`` on [0, 1] (f strictly increasing, f(0) = 0)."""
        return bool(np.all(self.slope(np.linspace(0.0, 1.0, 257)) > minimum))

    def linear(self, v: np.ndarray) -> np.ndarray:
        """f(v), with f(v) = 0 at and below the black floor."""
        v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
        if self.black:
            v = np.clip((v - self.black) / (1 - self.black), 0.0, 1.0)
        out = np.zeros_like(v)
        positive = v > 0
        out[positive] = np.exp(self.log_linear(v[positive]))
        return out

    @property
    def spec(self) -> str:
        black = f"{BLACK_KEY}{self.black:.4g}" if self.black else ""
        return SLOPE_PREFIX + ",".join(f"{c:.5g}" for c in self.coefficients) + black

    def response(self) -> Response:
        codes = np.linspace(0.0, 1.0, TABLE_SIZE)
        return Response(self.spec, (codes.astype(np.float32),
                                    self.linear(codes).astype(np.float32)))


def parse_slope_curve(spec: str) -> SlopeCurve:
    """``slope:c0,c1,...[;black=B]`` -> SlopeCurve; InputError if malformed or not increasing."""
    body, _, black = spec.removeprefix(SLOPE_PREFIX).partition(BLACK_KEY)
    try:
        values = tuple(float(v) for v in body.split(","))
        floor = float(black) if black else 0.0
    except ValueError as exc:
        raise InputError(f"--input-transfer {spec}: expected slope:C0,C1,... (numbers, then "
                         "optionally ;black=B), as hdrvid calibrate writes it") from exc
    if not 0.0 <= floor < 0.5:
        raise InputError(f"--input-transfer {spec}: the black floor must be a code in [0, 0.5); "
                         "re-run hdrvid calibrate")
    curve = SlopeCurve(values, floor)
    if not all(np.isfinite(values)) or not curve.is_monotone(0.0):
        raise InputError(f"--input-transfer {spec}: the curve is not increasing (its slope "
                         "polynomial goes negative on [0, 1]); re-run hdrvid calibrate")
    return curve


def load_response(spec: str) -> Response:
    """``gamma2.2`` | ``srgb`` | ``linear`` | ``slope:C0,C1,...`` (a `SlopeCurve`) | path to a
    table of the inverse response.

    A table file holds either one linear value per line for equally spaced code values, or two
    columns ``code linear`` (code in [0, 1] or in integer code values). Both columns must
    increase; the curve is normalised so that the largest code maps to 1.
    """
    if spec in ("gamma2.2", "srgb", "linear"):
        return Response(spec)
    if spec.startswith(SLOPE_PREFIX):
        return parse_slope_curve(spec).response()
    if spec == AUTO:  # a caller that did not resolve it would silently use a wrong curve
        raise InputError("--input-transfer auto is estimated from the video by convert, info "
                         "and calibrate; elsewhere give a curve (e.g. hdrvid calibrate's table)")
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{spec}: unknown input transfer; use gamma2.2, srgb, linear, auto or "
                         "the path of an inverse-response table")
    try:
        rows = np.loadtxt(path, ndmin=2, comments="#", delimiter=None)
    except ValueError as exc:
        raise InputError(f"{path}: cannot read the response table ({exc}); expect one or two "
                         "numeric columns") from exc
    if rows.shape[1] == 1:
        linear = rows[:, 0]
        codes = np.linspace(0.0, 1.0, len(linear))
    else:
        codes, linear = rows[:, 0], rows[:, 1]
        codes = codes / codes.max()
    if len(codes) < 2 or np.any(np.diff(codes) <= 0) or np.any(np.diff(linear) < 0):
        raise InputError(f"{path}: the response table must have at least 2 rows, increasing codes "
                         "and non-decreasing linear values")
    linear = (linear - linear[0]) / (linear[-1] - linear[0])
    return Response(str(path), (codes.astype(np.float32), linear.astype(np.float32)))
