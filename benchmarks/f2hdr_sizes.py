"""What each of F²HDR's learned parts costs per frame on this machine, at the official sizes
and at narrower ones, to choose the registry's sizes (docs/models/f2hdr.md).

    python benchmarks/f2hdr_sizes.py [--size 640x368] [--exposures 2] [--repeats 3]

Random weights (the zero heads made non-zero: cost does not depend on the values), inference
as `HdrPredictor` runs it on the CPU: bf16 autocast, channels_last, convolution weights cast.
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from hdrvid.models.common import cast_convolutions
from hdrvid.models.f2hdr import F2HDR
from hdrvid.registry import count_parameters

# (adapter width, refinement width, refinement blocks); the first is the official model
SIZES = [(64, 48, 3), (32, 32, 1), (24, 24, 1), (16, 16, 1)]


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks its kernels on the first call
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(exposures: int, sizes: tuple[int, int, int], height: int, width: int,
            repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    net = F2HDR(exposures, *sizes).eval()
    for head in (net.flow_adapter.tail, net.refine_net.head[1]):
        torch.nn.init.normal_(head.weight, std=1e-3)
    net.to(memory_format=torch.channels_last)
    cast_convolutions(net, torch.bfloat16)
    n = 2 * exposures - 1
    cycle = [1.0, 8.0] if exposures == 2 else [1.0, 4.0, 16.0]
    ldr = torch.rand(1, n, 3, height, width)
    times = torch.tensor([[cycle[i % exposures] for i in range(n)]])

    def run(refined: bool) -> None:
        net.refined = refined
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            net(ldr, times)

    with torch.inference_mode():
        dis = seconds(lambda: net.coarse_flows(ldr, times), repeats)
    coarse = seconds(lambda: run(False), repeats)
    full = seconds(lambda: run(True), repeats)
    return {"adapter+refine params": count_parameters(net.flow_adapter) +
            count_parameters(net.refine_net), "DIS": dis, "coarse": coarse, "full": full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="640x368")
    parser.add_argument("--exposures", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    table = Table("adapter", "refine", "blocks", "params (adapter+refine)", "DIS s",
                  "DIS + fusion s", "whole model s",
                  title=f"F²HDR {args.exposures}E per {width}×{height} frame, bf16, "
                        f"{torch.get_num_threads()} threads")
    for sizes in SIZES:
        r = measure(args.exposures, sizes, height, width, args.repeats)
        table.add_row(*map(str, sizes), f"{r['adapter+refine params']:,}", f"{r['DIS']:.3f}",
                      f"{r['coarse']:.3f}", f"{r['full']:.3f}")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
