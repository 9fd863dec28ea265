"""Where one model beats another: μ-law error by the reference frame's exposure level and by
the true luminance of the pixel, on clips of benchmarks/quality.py.

Each cell is 10·log10(MSE_a / MSE_b) of μ-law values (dB; positive: model b is better there),
pooled over the clip's frames of that reference level, with the share of pixels in the band.
The last column is each model's mean output over the mean truth in the darkest band: a bias
there costs much PSNR-T. It shows which windows and tones a learned model still gets wrong
against `merge`.

    python benchmarks/model_bands.py [--clips StillLife,CandleGlass] [--exposures 3E]
        [--models merge,f2hdr] [--weights f2hdr:3E=PATH] [--frames 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from quality import DATA, PATTERNS, STILLS, VIDEOS, Clip, evaluate, parse_weights
from rich.console import Console
from rich.table import Table

from hdrvid import synth
from hdrvid.color import mu_law
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr

BANDS = [(0, 0.01), (0.01, 0.05), (0.05, 0.2), (0.2, 1.0), (1.0, np.inf)]  # true luminance


def make_clip(name: str, exposures: str, frames: int, workdir: Path) -> Clip:
    """One clip as benchmarks/quality.py renders it (same seed per source)."""
    size, seed = (640, 360), (STILLS + VIDEOS).index(name)
    truth = synth.still_clip(DATA / "hdr" / f"{name}.exr", frames, *size, seed=seed) \
        if name in STILLS else synth.ldr_video_clip(DATA / "ldr-video" / name, frames, *size,
                                                    seed=seed)
    path = workdir / f"{name}-{exposures}.mp4"
    synth.write_alternating_clip(path, truth, pattern_from_cycle(PATTERNS[exposures]), seed=seed)
    return Clip("", name, exposures, path, truth, mask=np.ones(size[::-1], bool))


def band_table(clip: Clip, outputs: dict[str, list[np.ndarray]]) -> list[list[str]]:
    """Rows (level, then one cell per band) comparing the two models of ``outputs``."""
    (_, frames_a), (_, frames_b) = outputs.items()
    pattern = pattern_from_cycle(PATTERNS[clip.exposures])
    rows = []
    for level in range(pattern.period):
        indices = [i for i in range(len(clip.truth)) if pattern.level(i) == level]
        truth = np.stack([clip.truth[i] for i in indices])
        luminance = truth.mean(axis=-1)
        cells = []
        for low, high in BANDS:
            band = (luminance >= low) & (luminance < high)
            if band.sum() < 100:
                cells.append("-")
                continue
            errors = [np.mean((mu_law(np.stack([f[i] for i in indices])[band]) -
                               mu_law(truth[band])) ** 2) for f in (frames_a, frames_b)]
            cells.append(f"{10 * np.log10(errors[0] / errors[1]):+.2f} ({band.mean():.2f})")
        darkest = luminance < BANDS[0][1]  # mean output over mean truth: a bias in the shadows
        bias = [np.stack([f[i] for i in indices])[darkest].mean() / truth[darkest].mean()
                for f in (frames_a, frames_b)]
        rows.append([f"{clip.name} {clip.exposures} level {level}", *cells,
                     f"{bias[0]:.3f} / {bias[1]:.3f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="StillLife,CandleGlass,Desk")
    parser.add_argument("--exposures", default="3E", choices=list(PATTERNS))
    parser.add_argument("--models", default="merge,f2hdr")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL:2E=PATH")
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    models = args.models.split(",")
    if len(models) != 2:
        raise SystemExit("--models: name two models, a and b")
    weights = parse_weights(args.weights)
    table = Table(title=f"{models[1]} against {models[0]}: dB by true luminance (share of "
                        f"pixels); positive: {models[1]} better")
    table.add_column("clip, reference level")
    for low, high in BANDS:
        table.add_column(f"{low:g}–{high:g}")
    table.add_column(f"output / truth under {BANDS[0][1]:g}: {models[0]} / {models[1]}")
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for name in args.clips.split(","):
            clip = make_clip(name, args.exposures, args.frames, workdir)
            outputs = {}
            for model in models:
                out = workdir / f"{name}-{model}"
                evaluate(clip, model, out, weights.get((model, args.exposures)))
                outputs[model] = [read_exr(out / frame_name(i))[0].astype(np.float32)
                                  for i in range(len(clip.truth))]
            for row in band_table(clip, outputs):
                table.add_row(*row)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
