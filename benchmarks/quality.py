"""Quality of the weight-free models on simulated clips made from ../shared/data.

Clips (seeded, rebuilt on every run, never committed):
  * real HDR photographs (shared/data/hdr) under a seeded camera path with a moving patch;
  * DAVIS LDR video (shared/data/ldr-video) made pseudo-HDR by Chen21's inverse-CRF recipe;
each as a 2-exposure (1, 8) and a 3-exposure (1, 4, 16) clip, encoded to H.264 like a camera.
Every model runs through the real `hdrvid.convert`; PSNR-T is averaged per frame, then per clip.

    python benchmarks/quality.py [--frames 16] [--size 640x360] [--models reference,merge]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import hdrvid
from hdrvid import synth
from hdrvid.exposure import pattern_from_cycle
from hdrvid.metrics import psnr_l, psnr_t
from hdrvid.writers import read_exr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STILLS = ["StillLife", "CandleGlass", "Desk", "GoldenGate", "Tree", "Bonita"]
VIDEOS = ["blackswan", "car-roundabout", "dance-twirl", "soapbox"]
PATTERNS = {"2E": (1, 8), "3E": (1, 4, 16)}


def still_clip(name: str, n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    return synth.still_clip(DATA / "hdr" / f"{name}.exr", n, *size, seed=seed)


def video_clip(name: str, n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    return synth.ldr_video_clip(DATA / "ldr-video" / name, n, *size, seed=seed)


def build_clips(workdir: Path, n: int, size: tuple[int, int]):
    """Yield (group, name, exposures, clip path, ground truth frames)."""
    sources = [("HDR still + camera path", s, still_clip) for s in STILLS]
    sources += [("DAVIS pseudo-HDR", v, video_clip) for v in VIDEOS]
    for seed, (group, name, make) in enumerate(sources):
        truth = make(name, n, size, seed)
        for key, cycle in PATTERNS.items():
            path = workdir / f"{name}-{key}.mp4"
            pattern = pattern_from_cycle(cycle)
            synth.write_alternating_clip(path, truth, pattern, seed=seed)
            yield group, name, key, path, truth


def evaluate(path: Path, truth: list[np.ndarray], model: str, out: Path, exposures: str):
    options = hdrvid.ConvertOptions(model=model, exposures=exposures, overwrite=True)
    report = hdrvid.convert(path, out, options)
    preds = [read_exr(out / f"frame_{i:06d}.exr")[0].astype(np.float32) for i in range(len(truth))]
    return ([psnr_t(p, g) for p, g in zip(preds, truth)], [psnr_l(p, g) for p, g in zip(preds, truth)],
            report.seconds / report.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--models", default="reference,merge")
    parser.add_argument("--json", type=Path, help="also write the per-clip results here")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    models = args.models.split(",")
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: shared data not found; this benchmark needs ../shared/data")
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for group, name, key, path, truth in build_clips(tmp, args.frames, size):
            exposures = ",".join(str(t) for t in PATTERNS[key])
            for model in models:
                pt, pl, spf = evaluate(path, truth, model, tmp / "out", exposures)
                rows.append({"group": group, "clip": name, "exposures": key, "model": model,
                             "psnr_t": float(np.mean(pt)), "psnr_l": float(np.mean(pl)),
                             "seconds_per_frame": spf})
                print(f"{name:16s} {key} {model:10s} PSNR-T {np.mean(pt):6.2f}  "
                      f"PSNR-L {np.mean(pl):6.2f}  {spf:.3f} s/frame", flush=True)
    print_summary(rows, models)
    print(f"({time.perf_counter() - started:.0f} s; {args.frames} frames per clip at {args.size})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def print_summary(rows: list[dict], models: list[str]) -> None:
    table = Table(title="PSNR-T (dB), mean over clips; PSNR-L in brackets")
    table.add_column("clips")
    table.add_column("exposures")
    for model in models:
        table.add_column(model, justify="right")
    table.add_column("gain", justify="right")
    groups = sorted({(r["group"], r["exposures"]) for r in rows}) + [("all", "2E+3E")]
    for group, key in groups:
        sel = [r for r in rows if group in ("all", r["group"]) and key in (r["exposures"], "2E+3E")]
        means = {m: np.mean([r["psnr_t"] for r in sel if r["model"] == m]) for m in models}
        means_l = {m: np.mean([r["psnr_l"] for r in sel if r["model"] == m]) for m in models}
        gain = means[models[-1]] - means[models[0]]
        table.add_row(group, key, *[f"{means[m]:.2f} ({means_l[m]:.1f})" for m in models],
                      f"{gain:+.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
