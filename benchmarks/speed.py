"""End-to-end speed of `hdrvid convert` (decode -> model -> half/PIZ EXR) on this machine.

Renders procedural 2- and 3-exposure clips at each size, converts them with the real pipeline
and prints frames per second, end to end and for the model alone.

    python benchmarks/speed.py [--frames 48] [--sizes 640x360,1280x720] [--models merge]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import hdrvid
from hdrvid import synth
from hdrvid.exposure import pattern_from_cycle

CYCLES = {"2E": (1, 8), "3E": (1, 4, 16)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--models", default="merge,reference")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    table = Table(title=f"hdrvid convert, {args.frames} frames, {os.cpu_count()} cores "
                        f"({platform.processor() or platform.machine()}), torch {torch.__version__}")
    for column in ("model", "exposures", "size", "end-to-end fps", "model fps", "model share"):
        table.add_column(column, justify="right" if "fps" in column or "share" in column else "left")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            for key, cycle in CYCLES.items():
                clip = Path(tmp) / f"{size}-{key}.mp4"
                scene = synth.procedural_scene(args.frames, width, height, seed=3)
                synth.write_alternating_clip(clip, scene, pattern_from_cycle(cycle), seed=3)
                for model in args.models.split(","):
                    options = hdrvid.ConvertOptions(model=model, device=args.device,
                                                    exposures=",".join(map(str, cycle)),
                                                    overwrite=True)
                    report = hdrvid.convert(clip, Path(tmp) / "out", options)
                    table.add_row(model, key, size, f"{report.fps:.2f}",
                                  f"{report.frames / report.model_seconds:.2f}",
                                  f"{report.model_seconds / report.seconds:.0%}")
    Console().print(table)


if __name__ == "__main__":
    main()
