"""CPU throughput of the networks with their windows run one at a time on all cores (batch 1,
the default before `ModelSpec.parallel_windows`), as one batch on all cores, and in parallel,
one per core (`HdrPredictor`'s window threads): seconds per window, interleaved rounds.

Weights are each model's default initialisation (speed does not depend on their values).

    python benchmarks/parallel_windows.py [--models hdrflow,kalantari19,fshdrv,chen21-coarse]
                                          [--size 640x360] [--period 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from models import CYCLES, random_weights
from rich.console import Console
from rich.table import Table

from hdrvid.predictor import HdrPredictor
from hdrvid.process import tune_process

MODES = ("one at a time", "one batch", "in parallel")


def seconds_per_window(predictor: HdrPredictor, ldr: torch.Tensor, times: torch.Tensor,
                       mode: str) -> float:
    """One pass over ``ldr``'s windows (B = cores) in ``mode``."""
    cores = predictor.cores
    predictor.cores = cores if mode == "in parallel" else 1  # 1: no window threads
    try:
        tick = time.perf_counter()
        if mode == "one at a time":
            for i in range(len(ldr)):
                predictor.predict_torch(ldr[i:i + 1], times[i:i + 1])
        else:
            predictor.predict_torch(ldr, times)
        return (time.perf_counter() - tick) / len(ldr)
    finally:
        predictor.cores = cores


def main() -> None:
    tune_process()  # as the hdrvid command does, so the speeds are a conversion's
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="hdrflow,kalantari19,fshdrv,chen21-coarse")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--period", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    cores = torch.get_num_threads()
    table = Table("model", *(f"{m} (s / window)" for m in MODES), "parallel vs one at a time",
                  title=f"CPU, {cores} torch threads, {args.size}, {args.period} exposures, bf16 "
                        f"where the CPU has it; best of {args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models.split(","):
            predictor = HdrPredictor(model, args.period, "cpu",
                                     weights=random_weights(model, args.period, Path(folder)))
            n, cycle = predictor.window, CYCLES[args.period]
            ldr = torch.rand(cores, n, 3, height, width)
            times = torch.tensor([[cycle[(i + k) % args.period] for i in range(n)]
                                  for k in range(cores)])
            best = dict.fromkeys(MODES, float("inf"))
            for mode in MODES:  # warm-up: the window threads, oneDNN's kernels
                seconds_per_window(predictor, ldr, times, mode)
            for _ in range(args.rounds):
                for mode in MODES:
                    best[mode] = min(best[mode], seconds_per_window(predictor, ldr, times, mode))
            table.add_row(model, *(f"{best[m]:.3f}" for m in MODES),
                          f"{best['one at a time'] / best['in parallel']:.2f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
