"""Camera-response recovery from a bracketed still stack of known exposure times
(`calibrate_stack`, behind ``hdrvid calibrate FOLDER``).

`calibrate_stack` solves Debevec & Malik's (1997) system for ln f at every 8-bit code with a
smoothness term and hat weights, then fits the `SlopeCurve` of `hdrvid.calibrate` (with its
priors) to the solution so that the saved curve is smooth and monotone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from hdrvid.calibrate import (
    HIGH,
    LOW,
    MIN_EQUATIONS,
    MIN_SLOPE,
    CalibrationError,
    Estimate,
    _basis,
    _priors,
)
from hdrvid.errors import InputError
from hdrvid.response import SlopeCurve

STACK_SAMPLES = 400  # pixels sampled from the stack: Debevec & Malik's system stays small
SMOOTHNESS = 50.0


def read_stack_exposures(path: Path) -> list[tuple[str, float]]:
    """An exposures file: one ``IMAGE SECONDS`` line per image (seconds as a number or a
    fraction such as 1/64); blank lines and ``#`` comments are ignored."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the exposures file ({exc.strerror})") from exc
    for number, line in enumerate(lines, 1):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            seconds = float(Fraction(fields[1]))
            if seconds <= 0:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{path}:{number}: expected 'IMAGE SECONDS' (e.g. 'img01.png 1/64'), "
                             f"got {line.strip()!r}") from None
        rows.append((fields[0], seconds))
    if len({s for _, s in rows}) < 2:
        raise InputError(f"{path}: needs at least 2 images with different exposure times")
    return rows


def load_stack(folder: Path, exposures: Path | None = None
               ) -> tuple[list[np.ndarray], list[float], np.ndarray]:
    """Images (8-bit R'G'B' as float in [0, 1]), their times, and a mask of usable pixels
    (pure blue (0, 0, 255) marks registration borders, as in Debevec's Memorial stack)."""
    exposures = exposures or folder / "exposures.txt"
    if not exposures.is_file():
        raise InputError(f"{exposures}: no exposures file; write one 'IMAGE SECONDS' line per "
                         "image (see docs/response.md) or pass --exposure-times FILE")
    images, times = [], []
    for name, seconds in read_stack_exposures(exposures):
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{folder / name}: cannot read the image named in {exposures}")
        if images and image.shape != images[0].shape:
            raise InputError(f"{folder / name}: {image.shape[1]}×{image.shape[0]}, unlike the "
                             "stack's first image; the images must be registered and equal in size")
        images.append(image[..., ::-1].astype(np.float32) / 255)
        times.append(seconds)
    border = np.any([np.all(im == (0.0, 0.0, 1.0), axis=-1) for im in images], axis=0)
    return images, times, ~border


def debevec_malik(images: Sequence[np.ndarray], times: Sequence[float], mask: np.ndarray,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Solve Debevec & Malik's system for g = ln f at the 256 codes, shared by the channels.

    Returns (g, used): g normalised to g(255) = 0, and which codes the samples constrain.
    """
    rng = np.random.default_rng(seed)
    codes = [np.clip(np.round(im * 255), 0, 255).astype(np.intp) for im in images]
    # samples spread over the brightness range of a middle exposure, so every code is seen
    middle = codes[len(codes) // 2].max(axis=-1)
    candidates = np.flatnonzero(mask.ravel())
    order = candidates[np.argsort(middle.ravel()[candidates], kind="stable")]
    picks = order[np.linspace(0, len(order) - 1, STACK_SAMPLES).astype(int)]
    picks = np.unique(np.concatenate([picks, rng.choice(candidates, STACK_SAMPLES // 4)]))
    z = np.stack([c.reshape(-1, 3)[picks] for c in codes])  # (images, samples, 3)
    z = z.reshape(len(images), -1)
    n_points = z.shape[1]
    hat = np.minimum(np.arange(256), 255 - np.arange(256)).astype(float) + 1
    rows, targets = [], []
    n = 256 + n_points
    for j, t in enumerate(times):
        for i in range(n_points):
            w = hat[z[j, i]]
            row = np.zeros(n)
            row[z[j, i]], row[256 + i] = w, -w
            rows.append(row)
            targets.append(w * math.log(t))
    for k in range(1, 255):  # smoothness: second differences of g
        row = np.zeros(n)
        row[k - 1:k + 2] = SMOOTHNESS * hat[k] * np.array([1.0, -2.0, 1.0])
        rows.append(row)
        targets.append(0.0)
    row = np.zeros(n)
    row[255] = 1.0  # g(255) = 0: f(1) = 1
    rows.append(row)
    targets.append(0.0)
    g = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)[0][:256]
    used = np.zeros(256, bool)
    used[np.unique(z)] = True
    return g - g[255], used


def hat_weights(v: np.ndarray) -> np.ndarray:
    """Debevec & Malik's hat: codes near the middle are trusted most."""
    return np.minimum(v, 1 - v) + 1 / 255


def calibrate_stack(folder: str | Path, exposures: str | Path | None = None) -> Estimate:
    """A `SlopeCurve` from a bracketed still stack: Debevec–Malik's per-code solution, fitted
    with the smooth monotone model over the codes the stack constrains well."""
    folder = Path(folder)
    images, times, mask = load_stack(folder, Path(exposures) if exposures else None)
    g, used = debevec_malik(images, times, mask)
    v = (np.arange(256) + 0.0) / 255
    keep = used & (v > LOW) & (v < HIGH)
    if keep.sum() < MIN_EQUATIONS:
        raise CalibrationError(f"{folder}: the stack constrains only {int(keep.sum())} codes; "
                               "it needs images that are well exposed over more of the range")
    # g's own zero (code 255) is barely constrained: the fit carries a free offset, and f(1) = 1
    # comes from the smooth model instead
    basis = np.column_stack([_basis(v[keep]), np.ones(int(keep.sum()))])
    root = np.sqrt(hat_weights(v[keep]) / hat_weights(v[keep]).sum())
    prior_rows, prior_target = _priors(float(v[keep].max()))
    prior_rows = np.column_stack([prior_rows, np.zeros(len(prior_rows))])  # the offset is free
    solution = np.linalg.lstsq(np.vstack([basis * root[:, None], prior_rows]),
                               np.concatenate([g[keep] * root, prior_target]), rcond=None)[0]
    coefficients = solution[:-1]
    curve = SlopeCurve(tuple(float(c) for c in coefficients))
    if not curve.is_monotone(MIN_SLOPE):
        raise CalibrationError(f"{folder}: the recovered curve is not increasing; check the "
                               "exposure times in the exposures file")
    residual = float(np.sqrt(np.mean((basis @ solution - g[keep]) ** 2))) / math.log(2)
    coverage = float((v[keep].max() - v[keep].min()) / (HIGH - LOW))
    return Estimate(curve, residual, min(1.0, coverage), int(keep.sum()), "still stack")
