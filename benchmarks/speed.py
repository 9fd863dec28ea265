"""Speed of `hdrvid convert` per model, exposures, resolution and device, with the bottleneck.

Renders a procedural alternating-exposure clip per size, converts it with the real CLI in a
child process (so that its peak memory is its own) and prints one table: end-to-end fps, the
engine alone (the model on batches of windows), what each stage would sustain alone, which stage
limits the run, and peak host (and GPU) memory; its title names the device and how fast it ran
a plain convolution that day.

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
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from hdrvid import synth
from hdrvid.exposure import pattern_from_cycle
from hdrvid.predictor import resolve_device
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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or 'CPU'}, {os.cpu_count()} cores"


def conv_gflops(device: torch.device, runs: int = 5) -> float:
    """GFLOP/s of a 64 -> 64 3×3 convolution on a 1080p frame, in the engine's precision
    (bf16 channels_last on the CPU, fp16 on CUDA): issue 11's yardstick, 494 on the 2-core
    development CPU the day its targets were set, 262-295 on later days. The machines' speed
    moves from day to day, so the table prints it and numbers are read against it."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    x = torch.randn(1, 64, 1080, 1920, device=device).to(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device, memory_format=torch.channels_last)
    seconds = []
    with torch.inference_mode(), torch.autocast(device.type, dtype):
        for _ in range(runs + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
    return 2 * 64 * 64 * 9 * 1080 * 1920 / min(seconds[1:]) / 1e9


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
    device = resolve_device(args.device)
    table = Table(title=f"hdrvid convert → half/PIZ EXR, {args.frames} frames of {args.bits}-bit "
                        f"video, Y'CbCr on {args.yuv_on}, on {device_name(device)}: a 3×3 "
                        f"64-channel 1080p convolution ran {conv_gflops(device):.0f} GFLOP/s")
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
