"""The decode thread's work per frame, with Y'CbCr converted on the host or left to the device.

The decode thread feeds the model: it decodes, checks the exposure cycle on a sample of each
frame and prepares the model's input. With ``--yuv-on host`` it also converts every frame to
R'G'B' (OpenCV); with ``device`` it hands the planes over and the device converts them. The
table gives per frame: the thread's own time for each, and what the conversion costs where
it runs (the host's OpenCV, or torch on ``--device``: asynchronous on a GPU).

    python benchmarks/decode.py CLIP [CLIP ...] [--device auto] [--runs 2]

Clips: e.g. ``hdrvid simulate ../shared/data/hdr/Rec709.exr -o sim --size 1920x1080
--frames 24 [--bits 10]``, then ``sim/input.mp4``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from hdrvid.predictor import resolve_device, ycbcr_to_rgb
from hdrvid.steps import brightness_quantiles
from hdrvid.video import probe, read_frames


def thread_ms(clip: Path, keep_ycbcr: bool) -> float:
    """Decode plus the cycle check's sample, per frame (ms): the decode thread without the
    model's input preparation."""
    started, frames = time.perf_counter(), 0
    for frame in read_frames(clip, keep_ycbcr=keep_ycbcr):
        brightness_quantiles(frame.sample())
        frames += 1
    return (time.perf_counter() - started) * 1000 / frames


def conversion_ms(clip: Path, device: torch.device) -> tuple[float, float]:
    """(host OpenCV, torch on ``device`` including the upload of the planes) per frame, ms."""
    planes = [f.ycbcr for f in read_frames(clip, keep_ycbcr=True, max_frames=12)]
    ycbcr_to_rgb(planes[0], device)  # warm-up: kernels, allocator
    timings = []
    for convert in (lambda p: p.to_rgb(), lambda p: ycbcr_to_rgb(p, device)):
        started = time.perf_counter()
        for p in planes:
            convert(p)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append((time.perf_counter() - started) * 1000 / len(planes))
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    device = resolve_device(args.device)
    table = Table(title=f"decode thread per frame (ms; best of {args.runs}), conversion on {device}")
    for column in ("clip", "format", "size", "thread, Y'CbCr on host", "thread, on device",
                   "host conversion", f"{device.type} conversion"):
        table.add_column(column, justify="left" if column in ("clip", "format", "size") else "right")
    for clip in args.clips:
        info = probe(clip)
        host = min(thread_ms(clip, False) for _ in range(args.runs))
        planes = min(thread_ms(clip, True) for _ in range(args.runs))
        convert_host, convert_device = (min(v) for v in zip(*(conversion_ms(clip, device)
                                                             for _ in range(args.runs))))
        table.add_row(str(clip), info.pix_fmt, f"{info.width}x{info.height}", f"{host:.1f}",
                      f"{planes:.1f}", f"{convert_host:.1f}", f"{convert_device:.1f}")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
