"""Engine speed and memory of each model: time per window, peak memory, and how far reduced
precision moves the output from fp32.

Trained models run with their default initialisation saved as hdrvid safetensors (speed and
memory do not depend on the values; the precision difference of trained weights is measured by
benchmarks/quality.py once they exist). Each configuration runs in a child process, so that its
peak memory is its own.

    python benchmarks/models.py [--models lan-hdr,hdrflow] [--sizes 640x360,1280x720]
                                [--periods 2] [--precisions fp32,bf16] [--device cpu] [--runs 2]

A precision written ``bf16+compile`` (any precision, ``+compile``) runs the network through
``torch.compile`` (inductor, weights frozen); the first call, which compiles, is its own column.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from hdrvid.predictor import HdrPredictor
from hdrvid.process import tune_process
from hdrvid.registry import MODELS
from hdrvid.weights import save_safetensors

CYCLES = {2: (1.0, 8.0), 3: (1.0, 4.0, 16.0)}


def random_weights(model: str, period: int, folder: Path) -> Path | None:
    """The model's default initialisation as a weight file (None for weight-free models)."""
    spec = MODELS[model]
    if not spec.trained:
        return None
    torch.manual_seed(0)
    path = folder / f"{model}-{period}e.safetensors"
    save_safetensors(spec.build(period), path, {"model": model, "period": period})
    return path


def measure(model: str, period: int, width: int, height: int, precision: str, device: str,
            runs: int, weights: Path | None) -> dict:
    """Seconds per window (best of ``runs`` after a warm-up), peak memory, output.

    The windows slide over a sequence of frames, one frame per run, as in a video (LAN-HDR
    keeps each frame's encoding for the next windows)."""
    precision, _, compiled = precision.partition("+")
    predictor = HdrPredictor(model, period, device, weights=weights, precision=precision)
    if compiled == "compile":
        from torch._inductor import config as inductor
        inductor.freezing = True  # inference: constant weights, prepacked
        predictor.model = torch.compile(predictor.model)
    torch.manual_seed(1)
    n = predictor.window
    frames = torch.rand(1, n + runs, 3, height, width, device=predictor.device)
    cycle = CYCLES[period]
    times = torch.tensor([[cycle[i % period] for i in range(n + runs)]])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tick = time.perf_counter()
    hdr = predictor.predict_torch(frames[:, :n], times[:, :n])  # warm-up (and compile)
    first = time.perf_counter() - tick
    seconds = []
    for start in range(1, runs + 1):
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        hdr = predictor.predict_torch(frames[:, start:start + n], times[:, start:start + n])
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - tick)
    peak = (torch.cuda.max_memory_allocated() if predictor.device.type == "cuda" else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)
    return {"seconds": min(seconds), "first": first, "peak_bytes": peak, "output": hdr.cpu()}


def child(args: argparse.Namespace) -> None:
    result = measure(args.model, args.period, args.width, args.height, args.precision,
                     args.device, args.runs, Path(args.weights) if args.weights else None)
    torch.save(result.pop("output"), args.output)
    print(json.dumps(result))


def run_child(folder: Path, **config) -> dict:
    output = folder / "output.pt"
    command = [sys.executable, __file__, "--child", "--output", str(output)] + [
        f"--{k.replace('_', '-')}={v}" for k, v in config.items() if v is not None]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return {**json.loads(done.stdout.splitlines()[-1]), "output": torch.load(output)}


def main() -> None:
    tune_process()  # as the hdrvid command does, so the speeds are a conversion's
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(m for m in MODELS if MODELS[m].trained))
    parser.add_argument("--sizes", default="640x360")
    parser.add_argument("--periods", default="2")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("model", "weights", "output", "precision"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("period", "width", "height"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return child(args)

    table = Table("model", "exposures", "size", "precision", "s / frame", "fps", "first call s",
                  "peak memory", "max |Δ| vs fp32",
                  title=f"engine only, batch 1, {args.device}, torch {torch.__version__}, "
                        f"{torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for model in args.models.split(","):
            for period in map(int, args.periods.split(",")):
                weights = random_weights(model, period, folder)
                for size in args.sizes.split(","):
                    width, height = map(int, size.split("x"))
                    reference = None
                    for precision in args.precisions.split(","):
                        r = run_child(folder, model=model, period=period, width=width,
                                      height=height, precision=precision, device=args.device,
                                      runs=args.runs, weights=weights, threads=args.threads)
                        reference = r["output"] if reference is None else reference
                        diff = (r["output"] - reference).abs().max().item()
                        table.add_row(model, str(period), size, precision, f"{r['seconds']:.2f}",
                                      f"{1 / r['seconds']:.2f}", f"{r['first']:.1f}",
                                      f"{r['peak_bytes'] / 2**30:.2f} GiB", f"{diff:.2e}")
    Console().print(table)


if __name__ == "__main__":
    main()
