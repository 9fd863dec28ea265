"""Compare a predicted EXR sequence with its ground truth (`hdrvid eval`, docs/conventions.md §8).

`evaluate(pred, gt)` pairs the frames of two EXR folders (or two EXR files), reads them one
pair at a time, and returns an `EvalResult`: per-frame values, clip means, and means per
reference exposure when PRED is an hdrvid output whose ``hdrvid.json`` (or EXR headers) records
each frame's exposure. The library never prints; the CLI renders the result.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from hdrvid import metrics as m
from hdrvid.errors import (
    EvalError,
    ExrReadError,
    FrameMismatchError,
    HdrvidError,
    MetricUnavailableError,
)
from hdrvid.exposure import LEVEL_NAMES
from hdrvid.exr import read_exr

FRAME_RE = re.compile(r"frame_\d{6}\.exr")
DEFAULT_FPS = 30.0
INSTALL_HINT = "pip install 'hdrvid[metrics]'"


@dataclass(frozen=True)
class MetricInfo:
    label: str
    unit: str
    higher_is_better: bool
    per_frame: bool  # False: one value for the whole clip
    digits: int  # decimals shown in tables
    definition: str


METRICS = {
    "psnr-t": MetricInfo("PSNR-T", "dB", True, True, 2,
                         "PSNR of mu-law (mu=5000) mapped frames clipped to [0,1], peak 1, "
                         "no renormalisation; mean of per-frame values"),
    "psnr-l": MetricInfo("PSNR-L", "dB", True, True, 2,
                         "PSNR of linear values clipped to [0,1], peak 1; mean of per-frame values"),
    "ssim-t": MetricInfo("SSIM-T", "", True, True, 4,
                         "hdrvid SSIM-T: SSIM of mu-law mapped frames, 11x11 Gaussian window "
                         "sigma=1.5, K1=0.01, K2=0.03, data_range=1, per RGB channel averaged, "
                         "valid window positions only"),
    "temporal": MetricInfo("Temporal error", "", False, True, 5,
                           "mean |(T(pred_t)-T(pred_t-1)) - (T(gt_t)-T(gt_t-1))| over pixels and "
                           "frames 1..N-1, T = mu-law (frame 0 has no value)"),
    "pu21": MetricInfo("PU21-PSNR", "dB", True, True, 2,
                       "PSNR of PU21 (banding_glare) encoded luminance 1000 cd/m2 x Y709, peak "
                       "PU(100 cd/m2); mean of per-frame PSNRs (pycvvdp pools the MSE instead)"),
    "flip": MetricInfo("HDR-FLIP", "", False, True, 4,
                       "flip-evaluator HDR mean error on linear RGB at 1000 cd/m2 per unit "
                       "(ACES, 67 ppd, automatic exposure range); mean of per-frame values"),
    "cvvdp": MetricInfo("ColorVideoVDP", "JOD", True, False, 3,
                        "pycvvdp cvvdp, display standard_hdr_linear, linear BT.709 at 1000 cd/m2 "
                        "per unit, video mode over the whole clip (one value per clip)"),
}
METRIC_NAMES = tuple(METRICS)


@dataclass(frozen=True)
class FramePair:
    index: int
    pred: Path
    gt: Path


@dataclass(frozen=True)
class EvalProgress:
    stage: str  # "frames", then "cvvdp" for the clip-level pass
    done: int
    total: int


@dataclass
class FrameResult:
    index: int
    pred: str
    gt: str
    exposure: float | None
    values: dict[str, float | None]
    level: str | None = None


@dataclass
class EvalResult:
    """Per-frame values, clip means and per-exposure means of one PRED/GT comparison.

    Values are floats (``inf`` for identical frames under PSNR) or None where a metric has no
    value (frame 0 of the temporal error, HDR-FLIP on a black reference, clip-level metrics in
    per-frame rows). Means leave the None entries out.
    """

    pred: Path
    gt: Path
    pairing: str  # "name", "order" or "file"
    metrics: tuple[str, ...]
    frames: list[FrameResult]
    mean: dict[str, float | None]
    by_exposure: dict[str, dict] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fps: float | None = None

    def as_dict(self) -> dict:
        """A JSON-ready dict; infinite values become the strings "inf" / "-inf"."""
        frames = [{"index": f.index, "pred": f.pred, "gt": f.gt, "exposure": f.exposure,
                   "level": f.level, **f.values} for f in self.frames]
        data = {"pred": str(self.pred), "gt": str(self.gt), "pairing": self.pairing,
                "frame_count": len(self.frames), "metrics": list(self.metrics),
                "mean": self.mean, "by_exposure": self.by_exposure, "frames": frames,
                "unavailable": self.unavailable, "notes": self.notes, "fps": self.fps,
                "definitions": {name: METRICS[name].definition for name in self.metrics}}
        return _json_safe(data)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def format_value(metric: str, value: float | None) -> str:
    """A table cell: fixed decimals per metric, "inf" for identical frames, "–" for no value."""
    if value is None:
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{METRICS[metric].digits}f}"


# --- metric selection --------------------------------------------------------------------------

def parse_metrics(text: str) -> tuple[str, ...]:
    """"psnr-t,ssim-t" -> ("psnr-t", "ssim-t"); raises EvalError on an unknown name."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise EvalError(f"unknown metric {', '.join(unknown) or repr(text)}; "
                        f"choose from {','.join(METRIC_NAMES)}")
    return names


def resolve_metrics(requested: Iterable[str] | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """(metrics to run, {optional metric left out: reason}).

    None means every metric: optional ones whose package is missing are left out with a reason.
    An explicitly requested one that cannot run raises MetricUnavailableError.
    """
    names = METRIC_NAMES if requested is None else tuple(requested)
    run, unavailable = [], {}
    for name in names:
        reason = m.missing_optional(name) if name in m.OPTIONAL_MODULES else None
        if reason is None:
            run.append(name)
        elif requested is None:
            unavailable[name] = f"{reason}; {INSTALL_HINT}"
        else:
            raise MetricUnavailableError(f"metric {name} is not available: {reason}; install it "
                                         f"with {INSTALL_HINT} or leave it out of --metrics")
    return tuple(run), unavailable


# --- frames ------------------------------------------------------------------------------------

def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_exr_frames(folder: Path) -> list[Path]:
    """The frames of a folder: its ``frame_NNNNNN.exr`` files if any, else every ``*.exr``,
    sorted by name with digit runs compared as numbers. Hidden files are ignored."""
    files = [p for p in folder.iterdir()
             if p.suffix.lower() == ".exr" and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise EvalError(f"{folder}: no EXR files; give a folder of .exr frames "
                        "(such as the output of hdrvid convert) or an .exr file")
    hdrvid_frames = [p for p in files if FRAME_RE.fullmatch(p.name)]
    return sorted(hdrvid_frames or files, key=_natural_key)


def pair_frames(pred: Path, gt: Path) -> tuple[list[FramePair], str]:
    """Pair PRED's frames with GT's: (pairs, how) with how = "name", "order" or "file".

    Two folders of hdrvid frames (``frame_NNNNNN.exr``) are paired by file name, any other two
    folders by sorted order; two files make one pair.
    """
    for path in (pred, gt):
        if not path.exists():
            raise EvalError(f"{path}: no such file or folder; give an EXR folder or .exr file")
    if pred.is_dir() != gt.is_dir():
        kinds = ["folder" if p.is_dir() else "file" for p in (pred, gt)]
        raise EvalError(f"{pred} is a {kinds[0]} but {gt} is a {kinds[1]}; "
                        "give two EXR folders or two EXR files")
    if not pred.is_dir():
        return [FramePair(0, pred, gt)], "file"
    pred_files, gt_files = list_exr_frames(pred), list_exr_frames(gt)
    if len(pred_files) != len(gt_files):
        raise FrameMismatchError(f"{pred} has {len(pred_files)} EXR frames but {gt} has "
                                 f"{len(gt_files)}; compare sequences with the same frames")
    if all(FRAME_RE.fullmatch(p.name) for p in pred_files + gt_files):
        return _pair_by_name(pred_files, gt), "name"
    return [FramePair(i, p, g) for i, (p, g) in enumerate(zip(pred_files, gt_files))], "order"


def _pair_by_name(pred_files: list[Path], gt: Path) -> list[FramePair]:
    pairs = []
    for i, path in enumerate(pred_files):
        if not (gt / path.name).is_file():
            raise FrameMismatchError(f"{path}: {gt} has no frame {path.name}; hdrvid frames "
                                     "are paired by name, so both folders need the same names")
        pairs.append(FramePair(i, path, gt / path.name))
    return pairs


def read_frame(path: Path) -> tuple[np.ndarray, dict]:
    """(RGB float32 (H, W, 3) on the native hdrvid scale, EXR header); ExrReadError naming the
    file. Frames written with `convert --scale mid-grey` are divided by their ``hdrvid:scale``,
    so that they compare with ground truth on the scale the metrics assume."""
    try:
        pixels, header = read_exr(path)
    except HdrvidError as exc:  # no RGB channels
        raise ExrReadError(f"{exc}; hdrvid eval compares RGB frames") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise ExrReadError(f"{path}: cannot read the EXR file ({reason}); check that it is a "
                           "complete OpenEXR image") from exc
    pixels = pixels.astype(np.float32, copy=False)
    scale = float(header.get("hdrvid:scale", 1.0))
    return (pixels if scale == 1.0 else pixels * np.float32(1.0 / scale)), header


class LazyFrames(Sequence):
    """Frames of a list of EXR files, read when indexed (for the clip-level cvvdp pass)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        return read_frame(self.paths[index])[0]


# --- per-frame scoring -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pair:
    """One frame pair, linear (H, W, 3) float32 and μ-law mapped."""

    pred: np.ndarray
    gt: np.ndarray
    t_pred: np.ndarray
    t_gt: np.ndarray


_PER_FRAME = {
    "psnr-t": lambda f: m.psnr(f.t_pred, f.t_gt),
    "psnr-l": lambda f: m.psnr_l(f.pred, f.gt),
    "ssim-t": lambda f: m.ssim(f.t_pred, f.t_gt, data_range=1.0),
    "pu21": lambda f: m.pu21_psnr(f.pred, f.gt),
    "flip": lambda f: m.hdr_flip(f.pred, f.gt),
}


class _FrameScorer:
    """Per-frame metric values. Each frame is μ-law mapped once; the previous mapped pair is
    kept for the temporal error. A metric that is undefined on a frame (ValueError, e.g.
    HDR-FLIP on a black reference) gets None there, and the file is listed in ``undefined``."""

    def __init__(self, names: Sequence[str]):
        self.names = [n for n in names if METRICS[n].per_frame]
        self.previous: _Pair | None = None
        self.undefined: dict[str, list[str]] = {}

    def score(self, pred: np.ndarray, gt: np.ndarray, name: str) -> dict[str, float | None]:
        pair = _Pair(pred, gt, m.tonemap_mulaw(pred), m.tonemap_mulaw(gt))
        values = {n: self._value(n, pair, name) for n in self.names}
        self.previous = pair if "temporal" in self.names else None
        return values

    def _value(self, metric: str, pair: _Pair, name: str) -> float | None:
        if metric == "temporal":
            prev = self.previous
            return None if prev is None else m.change_difference(prev.t_pred, pair.t_pred,
                                                                 prev.t_gt, pair.t_gt)
        try:
            return _PER_FRAME[metric](pair)
        except ValueError:
            self.undefined.setdefault(metric, []).append(name)
            return None


# --- exposures from the hdrvid sidecar ---------------------------------------------------------

def _read_sidecar(folder: Path, notes: list[str]) -> dict:
    path = folder / "hdrvid.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: unreadable ({exc}); per-exposure means come from EXR headers")
        return {}
    return data if isinstance(data, dict) else {}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _sidecar_exposures(sidecar: dict) -> dict[str, float]:
    """{frame file name: relative exposure time} from hdrvid.json's "frames" list."""
    frames = sidecar.get("frames")
    entries = [f for f in frames if isinstance(f, dict)] if isinstance(frames, list) else []
    return {f["file"]: _number(f.get("exposure")) for f in entries
            if isinstance(f.get("file"), str) and _number(f.get("exposure")) is not None}


def _frame_exposure(pair: FramePair, header: dict, exposures: dict[str, float]) -> float | None:
    """From hdrvid.json, else from the frame's ``hdrvid:exposure`` header attribute."""
    if pair.pred.name in exposures:
        return exposures[pair.pred.name]
    return _number(header.get("hdrvid:exposure"))


def _level_names(values: Iterable[float], sidecar: dict) -> dict[float, str]:
    """Exposure time -> "low" / "mid" / "high" (or "t=<time>" beyond 3 levels).

    The levels are the pattern's times in hdrvid.json when given, else the distinct values.
    """
    pattern = sidecar.get("exposures")
    times = pattern.get("times") if isinstance(pattern, dict) else None
    if not isinstance(times, list) or any(_number(t) is None for t in times):
        times = set(values)
    times = sorted(float(t) for t in times)
    names = LEVEL_NAMES.get(len(times))
    return {t: names[i] if names else f"t={t:g}" for i, t in enumerate(times)}


def _assign_levels(frames: list[FrameResult], sidecar: dict) -> None:
    """Set each frame's level name, when every frame has a recorded exposure."""
    if any(f.exposure is None for f in frames):
        return
    levels = _level_names((f.exposure for f in frames), sidecar)
    for frame in frames:
        frame.level = levels.get(frame.exposure, f"t={frame.exposure:g}")


# --- results -----------------------------------------------------------------------------------

def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _means(frames: list[FrameResult], names: Sequence[str]) -> dict[str, float | None]:
    return {n: _mean(f.values.get(n) for f in frames) for n in names if METRICS[n].per_frame}


def _by_exposure(frames: list[FrameResult], names: Sequence[str]) -> dict:
    """{level: {"exposure", "frames", metric means}}, ordered by exposure; {} without levels."""
    groups: dict[str, list[FrameResult]] = {}
    for frame in frames:
        if frame.level is None:
            return {}
        groups.setdefault(frame.level, []).append(frame)
    ordered = sorted(groups.items(), key=lambda item: item[1][0].exposure)
    return {level: {"exposure": rows[0].exposure, "frames": len(rows), **_means(rows, names)}
            for level, rows in ordered}


def _resolve_fps(fps: float | None, sidecar: dict, header: dict, notes: list[str]) -> float:
    if fps:
        return float(fps)
    for value in (sidecar.get("fps"), header.get("framesPerSecond")):
        if isinstance(value, (int, float, Fraction)) and value > 0:
            return float(value)
    notes.append(f"cvvdp: frame rate unknown, assumed {DEFAULT_FPS:g} fps (set it with --fps)")
    return DEFAULT_FPS


# --- the evaluation ----------------------------------------------------------------------------

def evaluate(pred: str | Path, gt: str | Path, metrics: Iterable[str] | None = None,
             fps: float | None = None, device: str | None = None,
             progress: Callable[[EvalProgress], None] | None = None) -> EvalResult:
    """Compare the linear HDR frames in ``pred`` with those in ``gt`` (docs/conventions.md §8).

    Parameters
    ----------
    pred, gt : two folders of EXR frames (see `pair_frames`) or two EXR files. Pixels are
        linear RGB on the hdrvid scale (1.0 = the clipping point of the shortest exposure),
        half or float; PRED and GT must have the same frame count and size.
    metrics : names from METRIC_NAMES; None = all, leaving out (with a reason in
        ``unavailable``) optional metrics whose package is not installed.
    fps : frame rate for cvvdp; default from PRED's hdrvid.json, the EXR header, else 30.
    device : torch device for cvvdp; default CUDA when available.
    progress : called with an `EvalProgress` after each frame pair.

    Frames are read one pair at a time, so memory stays flat; cvvdp reads the clip again in a
    second pass. Raises EvalError subclasses naming the file and what to do.
    """
    pred, gt = Path(pred), Path(gt)
    names, unavailable = resolve_metrics(metrics)
    pairs, pairing = pair_frames(pred, gt)
    notes: list[str] = []
    sidecar = _read_sidecar(pred, notes) if pred.is_dir() else {}
    frames, first_header = _score_frames(pairs, names, _sidecar_exposures(sidecar), notes,
                                         progress)
    _assign_levels(frames, sidecar)
    result = EvalResult(pred, gt, pairing, names, frames, _means(frames, names),
                        _by_exposure(frames, names), unavailable, notes)
    if "cvvdp" in names:
        result.fps = _resolve_fps(fps, sidecar, first_header, notes)
        result.mean["cvvdp"] = _clip_cvvdp(pairs, result.fps, device, progress)
    result.mean = {n: result.mean.get(n) for n in names}
    return result


def _score_frames(pairs: list[FramePair], names: Sequence[str], exposures: dict[str, float],
                  notes: list[str], progress) -> tuple[list[FrameResult], dict]:
    scorer, rows, first_header = _FrameScorer(names), [], {}
    for pair in pairs:
        pred, header = read_frame(pair.pred)
        gt, _ = read_frame(pair.gt)
        _check_sizes(pair, pred, gt, names)
        first_header = first_header or header
        rows.append(FrameResult(pair.index, pair.pred.name, pair.gt.name,
                                _frame_exposure(pair, header, exposures),
                                scorer.score(pred, gt, pair.pred.name)))
        if progress:
            progress(EvalProgress("frames", len(rows), len(pairs)))
    for metric, files in scorer.undefined.items():
        notes.append(f"{metric}: undefined for {len(files)} frame(s) with a black or non-finite "
                     f"reference, left out of the mean: {', '.join(files[:5])}"
                     + (" ..." if len(files) > 5 else ""))
    return rows, first_header


def _check_sizes(pair: FramePair, pred: np.ndarray, gt: np.ndarray, names: Sequence[str]) -> None:
    if pred.shape != gt.shape:
        raise FrameMismatchError(f"{pair.pred}: {pred.shape[1]}×{pred.shape[0]} pixels but "
                                 f"{pair.gt} is {gt.shape[1]}×{gt.shape[0]}; compare frames of "
                                 "the same size")
    if "ssim-t" in names and min(gt.shape[:2]) < m.SSIM_WINDOW:
        raise EvalError(f"{pair.gt}: {gt.shape[1]}×{gt.shape[0]} pixels is smaller than the "
                        f"{m.SSIM_WINDOW}×{m.SSIM_WINDOW} SSIM window; leave ssim-t out of "
                        "--metrics")


def _clip_cvvdp(pairs: list[FramePair], fps: float, device: str | None, progress) -> float:
    def report(done: int) -> None:
        if progress:
            progress(EvalProgress("cvvdp", done, len(pairs)))

    class Counted(LazyFrames):
        def __getitem__(self, index):
            report(index + 1)
            return super().__getitem__(index)

    return m.cvvdp_jod(Counted([p.pred for p in pairs]), LazyFrames([p.gt for p in pairs]),
                       fps, device=device)
