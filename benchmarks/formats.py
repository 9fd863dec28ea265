"""Every video output format on one EXR sequence: encode speed, file size, and how closely the
HDR formats decode back to the EXRs' linear light.

The sequence is `hdrvid.synth.procedural_scene` (lamps far above 1.0, walls far below) written
as half-float EXRs. The round-trip error is the relative luminance error over pixels between
0.002 and 0.9 (below: noise; above: PQ at 1000 cd/m² and HLG clip at 1.0), as
tests/test_formats.py measures it.

    python benchmarks/formats.py [--width 1920 --height 1080 --frames 12] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hdrvid.exr import frame_name, write_exr
from hdrvid.render import RenderOptions, render
from hdrvid.source import linear_frames, read_source
from hdrvid.synth import procedural_scene
from hdrvid.tonemap import luminance_bt709

# label, kind, file name, options
CASES = [
    ("sdr h264", "sdr", "sdr.mp4", {}),
    ("hdr10 hevc", "hdr10", "hdr10.mp4", {}),
    ("hdr10 av1", "hdr10", "hdr10-av1.mp4", {"codec": "av1"}),
    ("hlg hevc", "hlg", "hlg.mp4", {}),
    ("hlg av1", "hlg", "hlg-av1.mp4", {"codec": "av1"}),
    ("prores pq", "prores", "prores.mov", {}),
    ("prores hlg", "prores", "prores-hlg.mov", {"transfer": "hlg"}),
    ("dnxhr pq", "dnxhr", "dnxhr.mov", {}),
    ("dnxhr hlg (mxf)", "dnxhr", "dnxhr-hlg.mxf", {"transfer": "hlg"}),
]


def write_sequence(folder: Path, width: int, height: int, frames: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, hdr in enumerate(procedural_scene(frames, width, height, seed=3)):
        write_exr(folder / frame_name(i), hdr.astype(np.float16), {})


def round_trip(truth: np.ndarray, video: Path) -> tuple[float, float]:
    back = np.stack(list(linear_frames(read_source(video))))
    y, y_back = luminance_bt709(truth), luminance_bt709(back)
    measured = (y > 0.002) & (y < 0.9)
    error = np.abs(y_back - y)[measured] / y[measured]
    return float(np.median(error)), float(np.percentile(error, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--keep", type=Path, help="write here and keep the files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        write_sequence(folder / "exr", args.width, args.height, args.frames)
        truth = np.stack(list(linear_frames(read_source(folder / "exr"))))
        print(f"{args.frames} frames {args.width}x{args.height}, crf {args.crf} (x264/x265/SVT)")
        print(f"{'format':18} {'fps':>6} {'Mbit/s':>8} {'median err':>11} {'p95 err':>8}")
        for label, kind, name, options in CASES:
            started = time.perf_counter()
            render(folder / "exr", folder / name, kind, RenderOptions(crf=args.crf, **options))
            seconds = time.perf_counter() - started
            rate = (folder / name).stat().st_size * 8 / (args.frames / 24) / 1e6
            errors = "" if kind == "sdr" else "{:11.4f} {:8.4f}".format(*round_trip(truth,
                                                                                   folder / name))
            print(f"{label:18} {args.frames / seconds:6.2f} {rate:8.1f} {errors}")


if __name__ == "__main__":
    main()
