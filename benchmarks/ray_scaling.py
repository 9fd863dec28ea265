"""Speed-up of `hdrvid convert --ray` with 1, 2, ... local workers over a single process.

Renders a procedural 2-exposure clip, converts it once in this process (the local engine) and
then on a local Ray instance with each worker count. Each Ray engine first converts a short
warm-up clip, so actor start-up (a Python process importing torch and loading the model) is
not counted: the table is the steady state that a long video sees. Outputs are compared with
the single-process run (merge: bit-identical; networks: within bf16 rounding, as actors run
one thread each).

    python benchmarks/ray_scaling.py [--model merge] [--frames 48] [--size 640x360]
                                     [--workers 1,2] [--chunk-frames 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hdrvid import ConvertOptions, convert, synth
from hdrvid.cluster import RayEngine, import_ray
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr
from hdrvid.process import tune_process


def render(path: Path, frames: int, width: int, height: int) -> Path:
    scene = synth.procedural_scene(frames, width, height, seed=3)
    synth.write_alternating_clip(path, scene, pattern_from_cycle((1, 8)), seed=3)
    return path


def timed(clip: Path, out: Path, options: ConvertOptions, engine=None) -> float:
    tick = time.perf_counter()
    convert(clip, out, options, engine=engine)
    return time.perf_counter() - tick


def relative_difference(a: Path, b: Path, index: int) -> float:
    """Largest |a - b| / max(|b|, 1e-3) of one frame: 0 when bit-identical. Networks differ
    slightly with the number of threads (oneDNN's accumulation order)."""
    x, y = (read_exr(folder / frame_name(index))[0].astype(np.float32) for folder in (a, b))
    return float((np.abs(x - y) / np.maximum(np.abs(y), 1e-3)).max())


def main() -> None:
    tune_process()  # as the hdrvid command does, so the speeds are a conversion's
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="merge")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--chunk-frames", type=int, default=8)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    options = ConvertOptions(model=args.model, weights=args.weights, exposures="1,8",
                             overwrite=True)
    ray = import_ray()
    ray.init(include_dashboard=False, log_to_driver=False)
    table = Table("engine", "workers", "seconds", "fps", "speed-up", "max rel. Δ vs local",
                  title=f"hdrvid convert --ray, {args.model} 2E {args.size}, {args.frames} frames")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = render(tmp / "clip.mp4", args.frames, width, height)
        warmup = render(tmp / "warmup.mp4", 8, width, height)
        single = timed(clip, tmp / "single", options)
        table.add_row("local", "1 process", f"{single:.1f}", f"{args.frames / single:.2f}",
                      "1.00", "-")
        for workers in map(int, args.workers.split(",")):
            with RayEngine(workers=workers, chunk_frames=args.chunk_frames) as engine:
                timed(warmup, tmp / "warmup", options, engine)
                seconds = timed(clip, tmp / f"ray{workers}", options, engine)
            difference = max(relative_difference(tmp / f"ray{workers}", tmp / "single", i)
                             for i in range(args.frames))
            table.add_row("ray", str(workers), f"{seconds:.1f}", f"{args.frames / seconds:.2f}",
                          f"{single / seconds:.2f}", f"{difference:.1e}")
    ray.shutdown()
    Console().print(table)


if __name__ == "__main__":
    main()
