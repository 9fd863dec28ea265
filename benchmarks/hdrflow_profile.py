"""Where one HDRFlow window's time goes on the CPU: the flow net, the fusion net, stacking their
inputs, and the rest (warps, linearisation, merge, padding), and each convolution's GFLOP/s.

Shipped weights, one window after a warm-up, timed over ``--runs`` windows; by default on one
torch thread, as each window runs in a conversion on 2 cores (windows in parallel).

    python benchmarks/hdrflow_profile.py [--size 640x360] [--period 2] [--threads 1] [--runs 5]
                                         [--precision auto] [--top 12]

It also times three ways to stack the fusion net's ten full-resolution images into its bf16
channels_last input: concatenate, change layout, cast (hdrvid before 2026-12-03); copy each
image into its slice, casting on the way; cast each image, then copy (`HDRFlow.stack`).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from models import CYCLES
from rich.console import Console
from rich.table import Table
from torch import nn

from hdrvid.predictor import HdrPredictor
from hdrvid.process import tune_process


def conv_flops(layer: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Multiply-adds ×2 of a (transposed) convolution from its input and output."""
    taps = layer.kernel_size[0] * layer.kernel_size[1] / layer.groups
    if isinstance(layer, nn.ConvTranspose2d):  # every input pixel meets the whole kernel
        return 2 * x.numel() * layer.out_channels * taps
    return 2 * y.numel() * layer.in_channels * taps


def timed(seconds: dict, name: str, module: nn.Module, flops: dict | None = None) -> None:
    """Accumulate ``module``'s wall time (and FLOPs) under ``name`` with forward hooks."""
    def start(_module, _inputs):
        _module.hdrvid_tick = time.perf_counter()

    def stop(_module, inputs, output):
        seconds[name] += time.perf_counter() - _module.hdrvid_tick
        if flops is not None:
            flops[name] += conv_flops(_module, inputs[0], output)

    module.register_forward_pre_hook(start)
    module.register_forward_hook(stop)


def timed_method(seconds: dict, name: str, owner: object, method: str) -> None:
    """Accumulate the wall time of ``owner.method`` under ``name``."""
    original = getattr(owner, method)

    def run(*args, **kwargs):
        tick = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - tick

    setattr(owner, method, run)


def stacking_ways(height: int, width: int, runs: int) -> dict[str, float]:
    """Seconds to stack ten (1, 3, H, W) fp32 images into (1, 30, H, W) bf16 channels_last."""
    images = [torch.rand(1, 3, height, width) for _ in range(10)]
    layout, bf16 = torch.channels_last, torch.bfloat16

    def into_slices(cast_first: bool) -> torch.Tensor:
        out = torch.empty(1, 30, height, width, dtype=bf16, memory_format=layout)
        for i, image in enumerate(images):
            out[:, 3 * i:3 * i + 3] = image.to(bf16) if cast_first else image
        return out

    ways = {"concatenate, layout, cast": lambda: torch.cat(images, 1).contiguous(
                memory_format=layout).to(bf16),
            "copy into slices, casting": lambda: into_slices(False),
            "cast, then copy into slices": lambda: into_slices(True)}
    best = {}
    for name, way in ways.items():
        way()
        ticks = []
        for _ in range(runs):
            tick = time.perf_counter()
            way()
            ticks.append(time.perf_counter() - tick)
        best[name] = min(ticks)
    return best


def main() -> None:
    tune_process()  # as the hdrvid command does, so the speeds are a conversion's
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--period", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    predictor = HdrPredictor("hdrflow", args.period, "cpu", precision=args.precision)
    model = predictor.model
    stages, convs, flops = defaultdict(float), defaultdict(float), defaultdict(float)
    timed(stages, "flow net", model.flow_net)
    timed(stages, "fusion net", model.fusion_net)
    timed_method(stages, "stacking", model, "stack")
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            timed(convs, name, layer, flops)

    n, cycle = predictor.window, CYCLES[args.period]
    ldr = torch.rand(1, n, 3, height, width)
    times = torch.tensor([[cycle[i % args.period] for i in range(n)]])
    predictor.predict_torch(ldr, times)  # warm-up
    for store in (stages, convs, flops):
        store.clear()
    tick = time.perf_counter()
    for _ in range(args.runs):
        predictor.predict_torch(ldr, times)
    total = (time.perf_counter() - tick) / args.runs
    stages["rest"] = total * args.runs - sum(stages.values())

    console = Console()
    title = (f"HDRFlow {args.period}E {args.size}, {args.threads} thread(s), "
             f"{predictor.dtype or torch.float32}: {total * 1e3:.0f} ms per window")
    table = Table("part", "ms / window", "share", title=title)
    for name, seconds in stages.items():
        table.add_row(name, f"{seconds / args.runs * 1e3:.1f}", f"{seconds / args.runs / total:.0%}")
    console.print(table)
    table = Table("convolution", "ms / window", "GFLOP/s", title=f"the {args.top} slowest layers")
    for name in sorted(convs, key=convs.get, reverse=True)[:args.top]:
        table.add_row(name, f"{convs[name] / args.runs * 1e3:.1f}",
                      f"{flops[name] / convs[name] / 1e9:.0f}")
    console.print(table)
    table = Table("way", "ms", title="stacking the fusion net's input (best of runs)")
    for name, seconds in stacking_ways(height + (-height) % 16, width + (-width) % 16,
                                       args.runs).items():
        table.add_row(name, f"{seconds * 1e3:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
