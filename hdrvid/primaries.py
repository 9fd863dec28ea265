"""RGB colour spaces of linear HDR frames: chromaticities, RGB <-> XYZ and conversions between
them (numpy only).

A conversion between two RGB spaces goes through CIE XYZ; when their white points differ (the
ACES spaces use a white near D60, the others D65) the XYZ values are adapted with the Bradford
transform, as the Academy's own conversions do, so that a neutral stays neutral.

References
----------
- SMPTE RP 177-1993: deriving the RGB -> XYZ matrix from the primaries and the white point.
- ITU-R BT.709-6 and BT.2020-2: primaries and D65.
- SMPTE ST 2065-1:2012 (ACES2065-1, primaries AP0) and Academy S-2014-004 (ACEScg, primaries
  AP1), both with the ACES white point (0.32168, 0.33767).
- Lam 1985 / Hunt: the Bradford cone-response matrix, in its linearised form (as in ICC v4 and
  CIE 159).
"""

from __future__ import annotations

import functools

import numpy as np

# CIE xy of red, green, blue and white, in the order of OpenEXR's `chromaticities` attribute
CHROMATICITIES: dict[str, tuple[float, ...]] = {
    "rec709": (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    "bt2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290),
    "acescg": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
    "aces2065-1": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.0770, 0.32168, 0.33767),
}
PRIMARIES: tuple[str, ...] = tuple(CHROMATICITIES)

BRADFORD = np.array([
    [0.8951, 0.2664, -0.1614],
    [-0.7502, 1.7135, 0.0367],
    [0.0389, -0.0685, 1.0296],
])


def _xyz(x: float, y: float) -> np.ndarray:
    """XYZ of chromaticity (x, y) with Y = 1."""
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(chromaticities: tuple[float, ...]) -> np.ndarray:
    """3×3 matrix from linear RGB with these primaries to CIE XYZ, white (1, 1, 1) -> Y = 1."""
    rx, ry, gx, gy, bx, by, wx, wy = chromaticities
    primaries = np.column_stack([_xyz(rx, ry), _xyz(gx, gy), _xyz(bx, by)])
    scale = np.linalg.solve(primaries, _xyz(wx, wy))  # each primary's luminance
    return primaries * scale


def bradford(white_from: tuple[float, float], white_to: tuple[float, float]) -> np.ndarray:
    """3×3 XYZ -> XYZ chromatic adaptation from one white point (xy) to another."""
    cone_from, cone_to = BRADFORD @ _xyz(*white_from), BRADFORD @ _xyz(*white_to)
    return np.linalg.inv(BRADFORD) @ np.diag(cone_to / cone_from) @ BRADFORD


@functools.lru_cache
def conversion(source: tuple[float, ...], target: tuple[float, ...]) -> np.ndarray:
    """3×3 matrix M (float64) from linear RGB in ``source`` chromaticities to ``target`` ones:
    ``rgb_target = M @ rgb_source`` (for (..., 3) arrays: ``rgb @ M.T``). Identity when they
    match; Bradford-adapted when their white points differ."""
    source, target = tuple(map(float, source)), tuple(map(float, target))
    if np.allclose(source, target, atol=1e-4):
        return np.eye(3)
    xyz = rgb_to_xyz(source)
    if not np.allclose(source[6:], target[6:], atol=1e-4):
        xyz = bradford(source[6:], target[6:]) @ xyz
    return np.linalg.inv(rgb_to_xyz(target)) @ xyz


def convert(rgb: np.ndarray, source: tuple[float, ...], target: tuple[float, ...]) -> np.ndarray:
    """(..., 3) linear RGB from ``source`` to ``target`` chromaticities, as float32 (the input
    itself when they match). Values outside the target gamut stay (negative components)."""
    matrix = conversion(tuple(source), tuple(target))
    rgb = np.asarray(rgb)
    if np.array_equal(matrix, np.eye(3)):
        return rgb
    return rgb.astype(np.float32, copy=False) @ matrix.T.astype(np.float32)


def named(chromaticities) -> str | None:
    """The name in `CHROMATICITIES` of these chromaticities (to 1e-3), else None."""
    for name, known in CHROMATICITIES.items():
        if np.allclose(chromaticities, known, atol=1e-3):
            return name
    return None
