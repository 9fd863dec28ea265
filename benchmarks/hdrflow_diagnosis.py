"""What holds a trained HDRFlow back: its flow network or its fusion network.

On the training run's fixed validation windows (sources never trained on), next to `merge`:
PSNR-T of HDRFlow as it runs (its own flows), of its fusion network on DIS flows (the flows `merge`
aligns with) instead, each with and without the reference replacement (docs/models/hdrflow.md §5),
and the mean absolute error of both kinds of flow against the windows' known flow (exact on the
photograph windows, forward-backward-checked DIS on the clean video frames).

    python benchmarks/hdrflow_diagnosis.py [WEIGHTS ...] [--exposures 2] [--windows 24]
                                           [--crop 128]

Default weights: the shipped file. fp32 on the CPU.
"""

from __future__ import annotations

import argparse

import torch
from quality import DATA  # the benchmarks' data folder
from rich.console import Console
from rich.table import Table

from hdrvid.models.hdrflow import replace_reference
from hdrvid.models.merge import ExposureMerge
from hdrvid.predictor import HdrPredictor
from hdrvid.training.data import Recipe
from hdrvid.training.loop import Validation, psnr_t


def dis_flows(merge: ExposureMerge, ldr: torch.Tensor, times: torch.Tensor,
              order: list[int]) -> tuple[torch.Tensor, ...]:
    """merge's DIS flows from the window's centre to each neighbour in ``order``."""
    c = ldr.shape[1] // 2
    return tuple(merge.flows(ldr[:, c], times[:, c], [(ldr[:, k], times[:, k]) for k in order]))


def flow_error(flows: tuple[torch.Tensor, ...], known: torch.Tensor, order: list[int]
               ) -> tuple[float, int]:
    """Summed |flow - known flow| over the known components, and their count."""
    total, count = 0.0, 0
    for k, flow in zip(order, flows):
        label = known[:, k]
        valid = ~label.isnan()
        total += (flow - label)[valid].abs().sum().item()
        count += int(valid.sum())
    return total, count


@torch.no_grad()
def diagnose(net: torch.nn.Module, validation: Validation, merge: ExposureMerge) -> dict:
    scores: dict[str, list[float]] = {}
    errors = {"flow net": [0.0, 0], "DIS": [0.0, 0]}
    for batch in validation.batches:
        ldr, times, gt = batch["ldr"], batch["times"], batch["gt"]
        c = ldr.shape[1] // 2
        own = net.flows(ldr, times)
        dis = dis_flows(merge, ldr, times, net.flow_order)
        for name, flows in (("flow net", own), ("DIS", dis)):
            for replace in (True, False):
                hdr = net(ldr, times, flows=flows)
                if replace:
                    hdr = replace_reference(hdr, ldr, times)
                key = f"{name}, {'replaced' if replace else 'raw'}"
                scores.setdefault(key, []).append(psnr_t(hdr.float(), gt[:, c]).mean().item())
            total, count = flow_error(flows, batch["flow"], net.flow_order)
            errors[name][0] += total
            errors[name][1] += count
    return {"psnr_t": {k: sum(v) / len(v) for k, v in scores.items()},
            "flow_error": {k: total / max(count, 1) for k, (total, count) in errors.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="*", default=[None])
    parser.add_argument("--exposures", type=int, default=2)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--crop", type=int, default=128)
    args = parser.parse_args()
    merge = ExposureMerge()
    validation = None
    table = Table("weights", "flows", "PSNR-T replaced", "PSNR-T raw", "flow error (px)",
                  title=f"HDRFlow {args.exposures}E on {args.windows} validation windows of "
                        f"{args.crop}×{args.crop}, fp32, CPU")
    for weights in args.weights:
        predictor = HdrPredictor("hdrflow", args.exposures, "cpu", weights=weights,
                                 precision="fp32")
        if validation is None:
            recipe = Recipe(period=args.exposures, window=predictor.window, crop=args.crop)
            validation = Validation(recipe, args.windows, DATA, predictor.device)
            table.add_row("(merge)", "DIS", "-", f"{validation.merge_psnr:.2f}", "-")
        result = diagnose(predictor.model, validation, merge)
        for flows in ("flow net", "DIS"):
            table.add_row(str(weights or "shipped"), flows,
                          f"{result['psnr_t'][flows + ', replaced']:.2f}",
                          f"{result['psnr_t'][flows + ', raw']:.2f}",
                          f"{result['flow_error'][flows]:.2f}")
    Console(width=150).print(table)
    print("flow error: mean |flow - known flow| per component where the flow is known; raw: "
          "without the reference replacement; merge: the weight-free DIS merge.")


if __name__ == "__main__":
    main()
