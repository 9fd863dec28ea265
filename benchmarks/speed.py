"""Speed of `hdrvid convert` per model, exposures, resolution and device, with the bottleneck.

Renders a procedural alternating-exposure clip per size, converts it with the real CLI in a
child process (so that its peak memory is its own) and prints one table: end-to-end fps, the
engine alone (the model on batches of windows), what each stage would sustain alone, which stage
limits the run, and peak host (and GPU) memory.

    python benchmarks/speed.py [--frames 12] [--sizes 640x360,1280x720,1920x1080,3840x2160]
                               [--models merge,reference] [--device auto] [--bits 8]
                               [--yuv-on auto]

The decode column is the decode thread's own rate: with ``--yuv-on host`` it includes the
Y'CbCr -> R'G'B' conversion, with ``device`` that conversion runs on the device (on a GPU,
asynchronously; on the CPU it is torch's, slower than the host's OpenCV).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hdrvid import synth
from hdrvid.exposure import pattern_from_cycle
from hdrvid.registry import get_spec

CYCLES = {"2E": (1, 8), "3E": (1, 4, 16)}


def run_convert(clip: Path, out: Path, model: str, cycle: tuple, device: str,
                yuv_on: str = "auto") -> dict:
    """Convert in a child process, so that its peak memory is its own: the JSON report."""
    command = [sys.executable, "-m", "hdrvid", "convert", str(clip), "-o", str(out), "--json",
               "--overwrite", "--model", model, "--device", device, "--yuv-on", yuv_on,
               "--exposures", ",".join(map(str, cycle))]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080,3840x2160")
    parser.add_argument("--models", default="merge,reference")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bits", type=int, choices=(8, 10), default=8,
                        help="8: H.264 4:2:0 clips; 10: HEVC Main 10")
    parser.add_argument("--yuv-on", default="auto", choices=("auto", "host", "device"))
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    table = Table(title=f"hdrvid convert → half/PIZ EXR, {args.frames} frames of {args.bits}-bit "
                        f"video, {workers} cores ({platform.machine()}), device {args.device}, "
                        f"Y'CbCr on {args.yuv_on}")
    for column in ("model", "exp.", "size", "end-to-end fps", "engine fps", "decode fps",
                   "write fps", "bottleneck", "peak RSS", "peak GPU"):
        table.add_column(column, justify="left" if column in ("model", "exp.", "size",
                                                               "bottleneck") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            for key, cycle in CYCLES.items():
                clip = Path(tmp) / f"{size}-{key}.mp4"
                scene = synth.procedural_scene(args.frames, width, height, seed=3)
                synth.write_alternating_clip(clip, scene, pattern_from_cycle(cycle), seed=3,
                                             bits=args.bits)
                for model in args.models.split(","):
                    if not get_spec(model).runs_as_shipped(len(cycle)):
                        print(f"{model} {key}: skipped, no weights ship for it", file=sys.stderr)
                        continue
                    report = run_convert(clip, Path(tmp) / "out", model, cycle, args.device,
                                         args.yuv_on)
                    rss = report.get("host_peak_bytes") or 0
                    fps = {k: v or float("inf") for k, v in report["throughput"].items()}
                    gpu = report.get("gpu_peak_bytes")
                    table.add_row(model, key, size, f"{report['fps']:.2f}",
                                  f"{report['frames'] / report['stages']['model']:.2f}",
                                  f"{fps['decode']:.0f}", f"{fps['write']:.0f}", report["bottleneck"],
                                  f"{rss / 2**20:.0f} MB",
                                  f"{gpu / 2**20:.0f} MB" if gpu else "-")
                    print(f"{model} {key} {size}: {report['fps']:.2f} fps", file=sys.stderr)
    Console(width=150).print(table)
    print("engine fps: the model alone; decode/write fps: what that stage sustains alone "
          "(decode: its thread, with the camera response and cycle check; writes on all cores); "
          "bottleneck: the slowest of decode, compute (the model) and write.")


if __name__ == "__main__":
    main()
