"""Camera responses: how decoded R'G'B' values map to linear light (numpy only).

Every supported model expects frames encoded with a pure 1/2.2 power (conventions.md §1), so
footage with another response is linearised with its own curve and re-encoded with gamma 2.2
exactly once, before it reaches a model (`Response.to_gamma22`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hdrvid.errors import InputError

GAMMA = 2.2


def linearize_gamma22(ldr: np.ndarray) -> np.ndarray:
    """Gamma-2.2 R'G'B' in [0, 1] to linear (the models' contract)."""
    return np.clip(ldr, 0.0, 1.0) ** GAMMA


def oetf_gamma22(linear: np.ndarray) -> np.ndarray:
    """Linear light to gamma-2.2 R'G'B', clipped to [0, 1]."""
    return np.clip(linear, 0.0, 1.0) ** (1 / GAMMA)


def eotf_srgb(v: np.ndarray) -> np.ndarray:
    """sRGB (IEC 61966-2-1) encoded values to linear."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


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


def load_response(spec: str) -> Response:
    """``gamma2.2`` | ``srgb`` | ``linear`` | path to a table of the inverse response.

    A table file holds either one linear value per line for equally spaced code values, or two
    columns ``code linear`` (code in [0, 1] or in integer code values). Both columns must
    increase; the curve is normalised so that the largest code maps to 1.
    """
    if spec in ("gamma2.2", "srgb", "linear"):
        return Response(spec)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{spec}: unknown input transfer; use gamma2.2, srgb, linear or the path "
                         "of an inverse-response table")
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
