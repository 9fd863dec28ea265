"""Camera-response recovery: `--input-transfer auto` against gamma 2.2 and the true curve.

Clips (rebuilt on every run, never committed): the held-aside HDR photographs of
benchmarks/quality.py (shared/data/hdr) under its seeded camera path, exposed 2E (1, 8) and
3E (1, 4, 16) with sensor noise, encoded through one camera curve each:
  gamma2.2  v = x^(1/2.2), what every model assumes;
  film      v = x^0.6 / (x^0.6 + 0.18^0.6) · (1 + 0.18^0.6), a film-like sigmoid;
  srgb      the sRGB curve (IEC 61966-2-1), a linear toe under a 1/2.4 power;
  log       v = ln(1 + 100 x) / ln(101), a log profile;
then H.264 (crf 12). Each clip is converted with merge and the right exposures three times:
--input-transfer gamma2.2, auto, and the true inverse curve as a table file; PSNR-T is the mean
over frames. The real Memorial Church stack (Debevec & Malik 1997, film) is scored as in
benchmarks/quality.py, with gamma2.2, auto (estimated from the alternating clip) and the curve
`hdrvid calibrate` recovers from the whole still stack.

    python benchmarks/response.py [--frames 12] [--size 320x180] [--stills A,B] [--json F]
    python benchmarks/response.py --quality-clips   # what auto resolves to on quality.py's clips
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from quality import DATA, PATTERNS, STILLS, _scale, memorial_clips, simulated_clips
from rich.console import Console
from rich.table import Table

import hdrvid
from hdrvid import synth
from hdrvid.calibrate import resolve_auto
from hdrvid.encode import VideoWriter
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr
from hdrvid.metrics import psnr_t
from hdrvid.stills import calibrate_stack
from hdrvid.video import probe

FILM_K = 0.18**0.6
LOG_A = 100.0
# camera curves: (encode linear -> code, decode code -> linear)
CURVES: dict[str, tuple[Callable, Callable]] = {
    "gamma2.2": (lambda x: x ** (1 / 2.2), lambda v: v**2.2),
    "film": (lambda x: x**0.6 / (x**0.6 + FILM_K) * (1 + FILM_K),
             lambda v: (FILM_K * v / (1 + FILM_K - v)) ** (1 / 0.6)),
    "srgb": (lambda x: np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055),
             lambda v: np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)),
    "log": (lambda x: np.log1p(LOG_A * x) / np.log1p(LOG_A),
            lambda v: np.expm1(v * np.log1p(LOG_A)) / LOG_A),
}
TRANSFERS = ("gamma2.2", "auto", "true")


def write_clip(path: Path, truth: list[np.ndarray], cycle: tuple, curve: str, seed: int) -> None:
    """Expose ``truth`` with ``cycle`` and synth's sensor noise, encode with ``curve``, H.264."""
    pattern = pattern_from_cycle(cycle)
    rng = np.random.default_rng(seed)
    encode = CURVES[curve][0]
    h, w = truth[0].shape[:2]
    with VideoWriter(path, w, h, crf=12) as writer:
        for i, hdr in enumerate(truth):
            gamma = synth.expose(hdr, pattern.time(i), rng)  # noisy, clipped, gamma 2.2
            writer.write(encode(np.clip(gamma, 0, 1) ** 2.2).astype(np.float32))


def write_table(path: Path, curve: str) -> Path:
    """The true inverse curve as a ``code linear`` table for --input-transfer FILE."""
    codes = np.linspace(0, 1, 1024)
    linear = CURVES[curve][1](codes)
    path.write_text("\n".join(f"{v:.6f} {f:.8g}" for v, f in zip(codes, linear)) + "\n")
    return path


def score(clip_path: Path, truth: list[np.ndarray], cycle: tuple, transfer: str, out: Path,
          mask: np.ndarray | None = None, fit_scale: bool = False) -> tuple[float, dict]:
    """Mean PSNR-T of merge on the clip with this input transfer, and the report."""
    # the exposures are known: insist on them where hdrvid checks them against the video
    # (under gamma 2.2, which a film's response contradicts)
    options = hdrvid.ConvertOptions(model="merge", exposures=",".join(map(str, cycle)),
                                    input_transfer=transfer, overwrite=True,
                                    force_exposures=True)
    report = hdrvid.convert(clip_path, out, options)
    values = []
    for i, gt in enumerate(truth):
        pred = read_exr(out / frame_name(i))[0].astype(np.float32)
        if mask is not None:
            pred, gt = pred[mask], gt[mask]
        if fit_scale:
            gt = gt / _scale(pred, gt)
        values.append(psnr_t(pred, gt))
    return float(np.mean(values)), report.as_dict()


def simulated(tmp: Path, stills: list[str], frames: int, size: tuple[int, int]) -> list[dict]:
    rows = []
    tables = {curve: write_table(tmp / f"{curve}.txt", curve) for curve in CURVES}
    for seed, still in enumerate(stills):
        truth = synth.still_clip(DATA / "hdr" / f"{still}.exr", frames, *size, seed=seed)
        for key, cycle in PATTERNS.items():
            for curve in CURVES:
                path = tmp / f"{still}-{key}-{curve}.mp4"
                write_clip(path, truth, cycle, curve, seed)
                row = {"clip": still, "exposures": key, "curve": curve}
                for transfer in TRANSFERS:
                    given = str(tables[curve]) if transfer == "true" else transfer
                    row[transfer], report = score(path, truth, cycle, given, tmp / "out")
                    if transfer == "auto":
                        row["estimate"] = report["response"]
                rows.append(row)
                print(f"{still:12s} {key} {curve:8s} " + "  ".join(
                    f"{t} {row[t]:6.2f}" for t in TRANSFERS), flush=True)
    return rows


def memorial(tmp: Path, frames: int) -> list[dict]:
    table = tmp / "memorial-response.txt"
    estimate = calibrate_stack(DATA / "memorial")
    table.write_text(estimate.table())
    rows = []
    for clip in memorial_clips(tmp, frames):
        cycle = PATTERNS[clip.exposures]
        row = {"clip": "memorial", "exposures": clip.exposures, "curve": "Kodak Gold (film)",
               "calibrated": estimate.as_dict()}
        for transfer, given in (("gamma2.2", "gamma2.2"), ("auto", "auto"),
                                ("calibrate", str(table))):
            row[transfer], report = score(clip.path, clip.truth, cycle, given, tmp / "out",
                                          clip.mask, fit_scale=True)
            if transfer == "auto":
                row["estimate"] = report["response"]
        rows.append(row)
        print(f"memorial     {clip.exposures} film     " + "  ".join(
            f"{t} {row[t]:6.2f}" for t in ("gamma2.2", "auto", "calibrate")), flush=True)
    return rows


def quality_clips(tmp: Path, frames: int) -> None:
    """What auto resolves to on benchmarks/quality.py's gamma-2.2 clips (640×360): where it is
    gamma2.2, the conversion is gamma 2.2's, bit for bit."""
    for clip in simulated_clips(tmp, frames, (640, 360)):
        warnings: list[str] = []
        spec, _ = resolve_auto(probe(clip.path), pattern_from_cycle(PATTERNS[clip.exposures]),
                               warnings)
        print(f"quality.py {clip.name:16s} {clip.exposures}: auto -> {spec}", flush=True)
        clip.path.unlink()


def summary(rows: list[dict]) -> None:
    table = Table(title="PSNR-T dB (merge), mean over clips; auto - true: worst clip; "
                        "auto - gamma2.2: worst clip")
    for name in ("curve", "exposures", "gamma2.2", "auto", "true curve", "auto − true (worst)",
                 "auto − gamma2.2 (worst)"):
        table.add_column(name, justify="left" if name in ("curve", "exposures") else "right")
    for curve in CURVES:
        for key in PATTERNS:
            mine = [r for r in rows if r["curve"] == curve and r["exposures"] == key]
            if not mine:
                continue
            mean = {t: np.mean([r[t] for r in mine]) for t in TRANSFERS}
            table.add_row(curve, key, *(f"{mean[t]:.2f}" for t in TRANSFERS),
                          f"{min(r['auto'] - r['true'] for r in mine):+.2f}",
                          f"{min(r['auto'] - r['gamma2.2'] for r in mine):+.2f}")
    for r in rows:
        if r["clip"] == "memorial":
            table.add_row("Memorial (film)", r["exposures"], f"{r['gamma2.2']:.2f}",
                          f"{r['auto']:.2f}", f"{r['calibrate']:.2f} (calibrate)",
                          "", f"{r['auto'] - r['gamma2.2']:+.2f}")
    Console(width=150).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--stills", default=",".join(STILLS))
    parser.add_argument("--no-memorial", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the per-clip results here")
    parser.add_argument("--quality-clips", action="store_true",
                        help="only print what auto resolves to on quality.py's gamma clips")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: shared data not found; this benchmark needs ../shared/data")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.quality_clips:
            quality_clips(tmp, args.frames)
            return
        stills = [s for s in args.stills.split(",") if s]
        rows = simulated(tmp, stills, args.frames, size)
        if not args.no_memorial:
            rows += memorial(tmp, args.frames)
    summary(rows)
    print(f"({time.perf_counter() - started:.0f} s; {args.frames} frames per clip at "
          f"{args.size}; Memorial at 512×768)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=lambda v: None
                                        if isinstance(v, float) and math.isnan(v) else v))


if __name__ == "__main__":
    main()
