"""Quality of every runnable model on a fixed, seeded set of clips made from ../shared/data.

Clips (rebuilt on every run, never committed):
  * real HDR photographs (shared/data/hdr) under a seeded camera path with a moving patch;
  * DAVIS LDR video (shared/data/ldr-video) made pseudo-HDR by Chen21's inverse-CRF recipe;
    each of these as a 2-exposure (1, 8) and a 3-exposure (1, 4, 16) clip, H.264 like a camera;
  * the real Memorial Church exposure stack (Debevec & Malik 1997) played as a static
    alternating clip (1/64 s and 1/8 s; or 1/64, 1/16 and 1/4 s) against Debevec's own radiance
    map, after one global scale fit per model (the map has its own units; the film's response is
    not gamma 2.2, so this is a real-camera check, not a synthetic one).
Every model runs through the real `hdrvid.convert`; metrics are averaged per frame, then per clip.

    python benchmarks/quality.py [--frames 12] [--size 640x360] [--models reference,merge]
                                 [--weights hdrflow:2E=W.safetensors ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

import hdrvid
from hdrvid import synth
from hdrvid.encode import VideoWriter
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr
from hdrvid.metrics import psnr_l, psnr_t, ssim_t, temporal_error
from hdrvid.registry import MODELS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STILLS = ["StillLife", "CandleGlass", "Desk", "GoldenGate", "Tree", "Bonita"]
VIDEOS = ["blackswan", "car-roundabout", "dance-twirl", "soapbox"]
PATTERNS = {"2E": (1, 8), "3E": (1, 4, 16)}
# Memorial Church frames per exposure level: 1/64 s, 1/16 s, 1/8 s, 1/4 s
MEMORIAL = {"2E": ["memorial0072.png", "memorial0069.png"],
            "3E": ["memorial0072.png", "memorial0070.png", "memorial0068.png"]}


@dataclass
class Clip:
    group: str
    name: str
    exposures: str  # "2E" or "3E"
    path: Path
    truth: list[np.ndarray] = field(repr=False)
    mask: np.ndarray = field(repr=False)  # (H, W) bool: the pixels that count
    fit_scale: bool = False  # ground truth in its own units: fit one global scale


def simulated_clips(workdir: Path, n: int, size: tuple[int, int]):
    sources = [("HDR photo + camera path", s, lambda s, seed: synth.still_clip(
        DATA / "hdr" / f"{s}.exr", n, *size, seed=seed)) for s in STILLS]
    sources += [("DAVIS pseudo-HDR", v, lambda v, seed: synth.ldr_video_clip(
        DATA / "ldr-video" / v, n, *size, seed=seed)) for v in VIDEOS]
    for seed, (group, name, make) in enumerate(sources):
        truth = make(name, seed)
        for key, cycle in PATTERNS.items():
            path = workdir / f"{name}-{key}.mp4"
            synth.write_alternating_clip(path, truth, pattern_from_cycle(cycle), seed=seed)
            yield Clip(group, name, key, path, truth, mask=np.ones(size[::-1], bool))


def memorial_clips(workdir: Path, n: int):
    truth, _ = read_exr(DATA / "memorial" / "memorial.exr")
    for key, files in MEMORIAL.items():
        frames = [cv2.imread(str(DATA / "memorial" / f))[..., ::-1] for f in files]
        # pure blue pixels are the registration's shifted borders (the stack's README)
        border = np.any([np.all(f == (0, 0, 255), axis=-1) for f in frames], axis=0)
        path = workdir / f"memorial-{key}.mp4"
        h, w = frames[0].shape[:2]
        with VideoWriter(path, w, h, crf=12) as writer:
            for i in range(n):
                writer.write(frames[i % len(frames)].astype(np.float32) / 255)
        yield Clip("Memorial (real stack)", "memorial", key, path,
                   [truth.astype(np.float32)] * n, mask=~border, fit_scale=True)


def evaluate(clip: Clip, model: str, out: Path, weights: str | None = None) -> dict:
    exposures = ",".join(str(t) for t in PATTERNS[clip.exposures])
    # the Memorial film's response is far from gamma 2.2: its frames measure about a stop
    # apart where the exposure times are three, so the true times are insisted on
    options = hdrvid.ConvertOptions(model=model, exposures=exposures, overwrite=True,
                                    weights=weights, force_exposures=clip.fit_scale)
    report = hdrvid.convert(clip.path, out, options)
    values: dict[str, list[float]] = {"psnr_t": [], "psnr_l": [], "ssim_t": []}
    preds, truths = [], []
    for i, truth in enumerate(clip.truth):
        pred = read_exr(out / frame_name(i))[0].astype(np.float32)
        if clip.mask is not None:  # masked pixels are zero in both: they count as equal
            pred, truth = pred * clip.mask[..., None], truth * clip.mask[..., None]
        if clip.fit_scale:
            truth = truth / _scale(pred[clip.mask], truth[clip.mask])
        values["psnr_t"].append(psnr_t(pred[clip.mask], truth[clip.mask]))
        values["psnr_l"].append(psnr_l(pred[clip.mask], truth[clip.mask]))
        values["ssim_t"].append(ssim_t(pred, truth))
        preds.append(pred)
        truths.append(truth)
    return {"group": clip.group, "clip": clip.name, "exposures": clip.exposures, "model": model,
            **{name: float(np.mean(v)) for name, v in values.items()},
            "temporal": temporal_error(preds, truths),
            "seconds_per_frame": report.seconds / report.frames}


def _scale(pred: np.ndarray, truth: np.ndarray) -> float:
    """truth / pred, the median over pixels well exposed in the prediction (a robust fit)."""
    valid = (pred > 1e-3) & (pred < 0.9) & (truth > 0)
    return float(np.median(truth[valid] / pred[valid]))


def runnable_models() -> list[str]:
    """Models that need no weights, or whose weights ship with hdrvid for some exposure count."""
    return [name for name, spec in MODELS.items() if any(map(spec.runs_as_shipped, (2, 3)))]


def parse_weights(values: list[str]) -> dict[tuple[str, str], str]:
    """``MODEL:2E=PATH`` options -> {(model, "2E"): path}."""
    weights = {}
    for value in values:
        key, _, path = value.partition("=")
        model, _, exposures = key.partition(":")
        if not path or exposures not in PATTERNS:
            raise SystemExit(f"--weights {value}: expected MODEL:2E=PATH or MODEL:3E=PATH")
        weights[model, exposures] = path
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--models", default=None, help="default: every runnable model")
    parser.add_argument("--json", type=Path, help="also write the per-clip results here")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL:2E=PATH",
                        help="weights for a model and exposure count (repeat); a model given "
                             "weights for one count only is scored on those clips only")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    weights = parse_weights(args.weights)
    models = args.models.split(",") if args.models else \
        list(dict.fromkeys([*runnable_models(), *(m for m, _ in weights)]))
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: shared data not found; this benchmark needs ../shared/data")
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = [*simulated_clips(tmp, args.frames, size), *memorial_clips(tmp, args.frames)]
        for clip in clips:
            for model in models:
                given = {e for m, e in weights if m == model}
                shipped = MODELS[model].runs_as_shipped(int(clip.exposures[0]))
                if clip.exposures not in given and (given or not shipped):
                    continue
                row = evaluate(clip, model, tmp / "out", weights.get((model, clip.exposures)))
                rows.append(row)
                print(f"{clip.name:16s} {clip.exposures} {model:10s} PSNR-T {row['psnr_t']:6.2f}  "
                      f"PSNR-L {row['psnr_l']:6.2f}  SSIM-T {row['ssim_t']:.4f}  "
                      f"temporal {1e3 * row['temporal']:5.2f}e-3  "
                      f"{row['seconds_per_frame']:.3f} s/frame", flush=True)
    print_summary(rows, models)
    print(f"({time.perf_counter() - started:.0f} s; {args.frames} frames per clip; simulated "
          f"clips at {args.size}, Memorial at 512×768)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def print_summary(rows: list[dict], models: list[str]) -> None:
    table = Table(title="PSNR-T dB / PSNR-L dB / SSIM-T / temporal error ×1e3, mean over "
                        "clips; seconds per frame end to end")
    table.add_column("clips")
    table.add_column("exposures")
    for model in models:
        table.add_column(model, justify="right")
    groups = list(dict.fromkeys((r["group"], r["exposures"]) for r in rows))
    simulated = [g for g in groups if "Memorial" not in g[0]]
    keys = list(dict.fromkeys(key for _, key in simulated))
    # per exposure count too: a model scored on 2E clips only is compared on those
    totals = [("all simulated", k) for k in keys]
    if len(keys) > 1:
        totals.append(("all simulated", "+".join(keys)))
    for group, key in [*groups, *totals]:
        selected = [r for r in rows if (group, key) == (r["group"], r["exposures"])
                    or (group == "all simulated" and (r["group"], r["exposures"]) in simulated
                        and r["exposures"] in key.split("+"))]
        cells = []
        for model in models:
            mine = [r for r in selected if r["model"] == model]
            if {r["exposures"] for r in mine} != set(key.split("+")):
                mine = []  # a mean over fewer clips than the other models' is no comparison
            cells.append(" / ".join(f"{np.mean([r[k] * scale for r in mine]):.{d}f}"
                                    for k, d, scale in (("psnr_t", 2, 1), ("psnr_l", 2, 1),
                                                        ("ssim_t", 4, 1), ("temporal", 2, 1e3)))
                         if mine else "-")
        table.add_row(group, key, *cells)
    speed = [f"{np.mean([r['seconds_per_frame'] for r in rows if r['model'] == m]):.3f}"
             for m in models]
    table.add_row("seconds per frame", "", *speed)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
