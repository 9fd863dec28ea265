"""Videos without EXRs: streamed from the model to the encoder, against the EXR round trip.

Converts one synthetic 2-exposure clip to each video kind twice with `merge`: as `convert`
does it (streamed, `hdrvid.stream`) and through temporary EXRs (an engine that does not
stream), checks that the two videos are the same bytes, and prints wall time and the largest
temporary folder the EXR route needed.

    python benchmarks/streaming.py [--frames 240] [--size 640x360] [--kinds sdr,hlg]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hdrvid import ConvertOptions, convert
from hdrvid.engine import LocalEngine
from hdrvid.exposure import pattern_from_cycle
from hdrvid.synth import procedural_scene, write_alternating_clip


class ExrRoute(LocalEngine):
    """`LocalEngine` without streaming: videos are rendered from temporary EXRs."""

    streams = False


def largest_folder(folder: Path, stop: threading.Event, peak: list[int]) -> None:
    """Poll the bytes under ``folder`` until ``stop``; the largest goes to ``peak[0]``."""
    while not stop.wait(0.2):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        peak[0] = max(peak[0], size)


def timed(clip: Path, out: Path, kind: str, engine: LocalEngine) -> tuple[float, int, bytes]:
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=largest_folder, args=(out, stop, peak))
    out.mkdir()
    watcher.start()
    started = time.perf_counter()
    try:
        report = convert(clip, out, ConvertOptions(format=kind, overwrite=True), engine=engine)
    finally:
        stop.set()
        watcher.join()
    seconds = time.perf_counter() - started
    return seconds, peak[0], report.videos[0].read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--kinds", default="sdr,hlg")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    table = Table(title=f"merge, {args.frames} frames at {width}×{height}: seconds end to end")
    for column in ("kind", "streamed s", "EXR route s", "EXR route temporary MB", "same bytes"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip = root / "clip.mp4"
        write_alternating_clip(clip, procedural_scene(args.frames, width, height, seed=3),
                               pattern_from_cycle([1, 8]))
        local, exr_route = LocalEngine(), ExrRoute()
        for kind in args.kinds.split(","):
            streamed = timed(clip, root / f"streamed-{kind}", kind, local)
            via_exrs = timed(clip, root / f"exrs-{kind}", kind, exr_route)
            table.add_row(kind, f"{streamed[0]:.1f}", f"{via_exrs[0]:.1f}",
                          f"{via_exrs[1] / 1e6:.0f}", str(streamed[2] == via_exrs[2]))
            shutil.rmtree(root / f"streamed-{kind}")
            shutil.rmtree(root / f"exrs-{kind}")
    Console().print(table)


if __name__ == "__main__":
    main()
