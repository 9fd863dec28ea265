"""`merge`'s DIS gradient-descent iterations against motion: PSNR-T on the fixed validation
windows of `hdrvid train` (sources never trained on; 128×128 crops whose known flow reaches
15 px), all windows and those where a neighbour moves 9 px or more on average.

    python benchmarks/dis_iterations.py [--iterations 4,8,12,16,25] [--windows 24]

Pair it with `python benchmarks/quality.py --models merge` (the full 640×360 clips, smaller
motion) when changing `ExposureMerge.descent_iterations`.
"""

from __future__ import annotations

import argparse
import copy

import torch
from quality import DATA  # the benchmarks' data folder
from rich.console import Console
from rich.table import Table

from hdrvid.models.merge import ExposureMerge
from hdrvid.registry import get_spec
from hdrvid.training.data import Recipe
from hdrvid.training.loop import Validation

FAST = 9.0  # px: a neighbour's mean |known flow| that counts as large motion


def motion(batch: dict) -> float:
    """The largest mean |known flow| (px) from the reference to one of its neighbours."""
    means = [flow[~flow.isnan()].abs().mean().item() for flow in batch["flow"].unbind(1)
             if (~flow.isnan()).any()]
    return max(means, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", default="4,8,12,16,25")
    parser.add_argument("--windows", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(1)  # DIS runs a thread per flow already
    table = Table("iterations", title=f"merge PSNR-T (dB) on {args.windows} validation windows "
                                      f"of 128×128; fast: mean motion ≥ {FAST:.0f} px")
    rows = {n: [n] for n in args.iterations.split(",")}
    merge_spec = get_spec("merge")
    for period in (2, 3):
        window = 2 * period - 1
        validation = Validation(Recipe(period=period, window=window, crop=128), args.windows,
                                DATA, torch.device("cpu"))
        fast = copy.copy(validation)  # the same windows' scoring, on the fast ones only
        fast.batches = [b for b in validation.batches if motion(b) >= FAST]
        table.add_column(f"{period}E all")
        table.add_column(f"{period}E fast ({len(fast.batches)})")
        for iterations in rows:
            merge = ExposureMerge(descent_iterations=int(iterations))
            # merge reads the centre 3 frames of the window
            rows[iterations] += [f"{v.score(merge, merge_spec.forward, window=3):.2f}"
                                 if v.batches else "-" for v in (validation, fast)]
    for row in rows.values():
        table.add_row(*row)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
