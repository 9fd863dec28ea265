"""Whether a device computes what the CPU computes, and what each precision costs there.

Each model runs on the windows of a procedural alternating-exposure clip: on the CPU in fp32,
then on ``--device`` in each precision. Printed per row: PSNR-T against the clip's ground truth,
its change from the CPU's fp32 result (issue 11's budget: 0.05 dB on a GPU, 0.1 on the CPU),
and the largest difference from the CPU's output relative to the frame's peak.

    python benchmarks/devices_agree.py [--device cuda] [--models merge,hdrflow,lan-hdr]
                                       [--size 640x360] [--frames 10]

Models that ship no weights run with their default initialisation (the arithmetic is compared,
not the quality). Part of benchmarks/gpu_check.sh, the one run to make on a lent GPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from models import random_weights
from rich.console import Console
from rich.table import Table
from speed import CYCLES, device_name

from hdrvid import HdrPredictor, read_frames, synth
from hdrvid.exposure import pattern_from_cycle
from hdrvid.metrics import psnr_t
from hdrvid.registry import get_spec
from hdrvid.windows import window_indices


def outputs(model: str, period: int, device: str, precision: str, weights: Path | None,
            frames: list[np.ndarray], times: list[float]) -> list[np.ndarray]:
    """The model's HDR frame for every centre of the clip."""
    predictor = HdrPredictor(model, period, device, weights=weights, precision=precision)
    return [predictor.predict([frames[i] for i in indices], [times[i] for i in indices])
            for indices in (window_indices(c, predictor.window, len(frames), period)
                            for c in range(len(frames)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="merge,hdrflow,lan-hdr")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    precisions = ("fp32", "fp16", "bf16") if args.device.startswith("cuda") else ("fp32", "bf16")
    name = device_name(torch.device(args.device))
    table = Table("model", "exp.", "device", "precision", "PSNR-T dB", "Δ vs CPU fp32 dB",
                  "max |Δ| / peak", title=f"{args.frames} frames of {args.size}, {name}")
    with tempfile.TemporaryDirectory() as tmp:
        for key, cycle in CYCLES.items():
            pattern, clip = pattern_from_cycle(cycle), Path(tmp) / f"{key}.mp4"
            scene = synth.procedural_scene(args.frames, width, height, seed=3)
            truth = synth.write_alternating_clip(clip, scene, pattern, seed=3)
            frames = [frame.rgb for frame in read_frames(clip)]
            times = [pattern.time(i) for i in range(len(frames))]
            for model in args.models.split(","):
                weights = None if get_spec(model).runs_as_shipped(len(cycle)) else \
                    random_weights(model, len(cycle), Path(tmp))
                cpu = outputs(model, len(cycle), "cpu", "fp32", weights, frames, times)
                cpu_psnr = np.mean([psnr_t(x, t) for x, t in zip(cpu, truth)])
                for precision in precisions:
                    out = outputs(model, len(cycle), args.device, precision, weights, frames,
                                  times)
                    psnr = np.mean([psnr_t(x, t) for x, t in zip(out, truth)])
                    worst = max(np.abs(x - y).max() / max(y.max(), 1e-6) for x, y in zip(out, cpu))
                    table.add_row(model, key, args.device, precision, f"{psnr:.3f}",
                                  f"{psnr - cpu_psnr:+.3f}", f"{worst:.1e}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
