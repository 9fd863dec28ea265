"""What replaces F²HDR's network where the reference is well exposed, scored on the training
validation windows (not the held-aside clips of benchmarks/quality.py): the reference alone
(``well_exposed_from = "reference"``, the official behaviour) against `merge`'s strictly
deghosted mean (``"merge"``) and the fusion net's choice between `merge`'s means
(``"learned"``), with the bundled weights, PSNR-T in dB.

    python benchmarks/f2hdr_replacement.py [--windows 24]   (needs ../shared/data)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from quality import DATA
from rich.console import Console
from rich.table import Table

from hdrvid.predictor import HdrPredictor
from hdrvid.registry import get_spec
from hdrvid.training.data import Recipe
from hdrvid.training.loop import Validation

SOURCES = ("reference", "merge", "learned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=24)
    args = parser.parse_args()
    spec = get_spec("f2hdr")
    table = Table("exposures", "merge", *(f"f2hdr, {source}" for source in SOURCES),
                  title="PSNR-T on the training validation windows (dB)")
    for period in (2, 3):
        recipe = Recipe(period=period, window=spec.window(period), crop=128)
        validation = Validation(recipe, args.windows, Path(DATA), torch.device("cpu"))
        predictor = HdrPredictor("f2hdr", period, "cpu")
        scores = []
        for source in SOURCES:
            predictor.model.well_exposed_from = source
            with torch.autocast("cpu", predictor.dtype, enabled=predictor.dtype is not None):
                scores.append(validation.score(predictor.model, spec.forward))
        table.add_row(f"{period}E", f"{validation.merge_psnr:.2f}", *(f"{s:.2f}" for s in scores))
    Console().print(table)


if __name__ == "__main__":
    main()
