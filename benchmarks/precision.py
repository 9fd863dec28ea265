"""What reduced precision costs a trained model: PSNR-T of fp32 and of bf16 (or fp16) on the
training run's fixed validation windows (sources never used for training), next to `merge`.

    python benchmarks/precision.py WEIGHTS.safetensors [--model hdrflow] [--exposures 2]
                                   [--windows 24] [--crop 256] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse

import torch
from quality import DATA  # the benchmarks' data folder
from rich.console import Console
from rich.table import Table

from hdrvid.predictor import HdrPredictor
from hdrvid.training.data import Recipe
from hdrvid.training.loop import Validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights")
    parser.add_argument("--model", default="hdrflow")
    parser.add_argument("--exposures", type=int, default=2)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    first = HdrPredictor(args.model, args.exposures, args.device, weights=args.weights)
    recipe = Recipe(period=args.exposures, window=first.window, crop=args.crop)
    validation = Validation(recipe, args.windows, DATA, first.device)
    table = Table("model", "precision", "PSNR-T (dB)", "Δ vs fp32",
                  title=f"{args.windows} validation windows, {args.crop}×{args.crop}, "
                        f"{args.exposures} exposures, {first.device}")
    table.add_row("merge", "-", f"{validation.merge_psnr:.3f}", "")
    reference = None
    for precision in args.precisions.split(","):
        predictor = HdrPredictor(args.model, args.exposures, args.device, weights=args.weights,
                                 precision=precision)
        with torch.inference_mode():
            score = validation.score(predictor, lambda p, ldr, times: p.predict_torch(ldr, times))
        reference = score if reference is None else reference
        table.add_row(args.model, precision, f"{score:.3f}", f"{score - reference:+.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
