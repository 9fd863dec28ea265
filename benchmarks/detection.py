"""How often exposure detection recovers cycle, phase and ratios on clips from ../shared/data.

Every source of benchmarks/quality.py at 320×180, 24 frames, as 2-exposure (1:8 starting low and
high, 1:4) and 3-exposure (1:4:16 in all three phases) clips with camera or real motion; then
`hdrvid info --json`, without hints, on the very clips benchmarks/quality.py converts (the
simulated ones and the Memorial Church stack).

A clip counts as found when the cycle (period), which frame is which level (phase) and every
step between levels are right to within a third of a stop: the resolution of detection (it
rounds to the cameras' 1/3-stop exposure step), and about what the conversion tolerates on
footage whose curve is not gamma 2.2 (`--tolerance` scores merge on the Memorial stack with
steps a third of a stop off; docs/performance.md). Exact counts are printed too.

    python benchmarks/detection.py [--clips GoldenGate,memorial]
    python benchmarks/detection.py --tolerance   # merge on Memorial with steps 1/3 stop off
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from quality import DATA, PATTERNS, STILLS, VIDEOS, _scale, memorial_clips, simulated_clips

import hdrvid
from hdrvid import synth
from hdrvid.cli import main as hdrvid_main
from hdrvid.errors import ExposureError
from hdrvid.exposure import ExposurePattern, detect_exposure_pattern, pattern_from_cycle
from hdrvid.exr import frame_name, read_exr
from hdrvid.metrics import psnr_t
from hdrvid.video import read_frames

CYCLES = [(1, 8), (8, 1), (1, 4), (1, 4, 16), (16, 1, 4), (4, 16, 1)]
TOLERANCE_STOPS = 1 / 3


def verdict(times: Sequence[float], phase: int, truth: ExposurePattern) -> tuple[bool, bool]:
    """(found to within a third of a stop per step, found exactly)."""
    if (len(times), phase) != (truth.period, truth.phase):
        return False, False
    steps = [math.log2(b / a) for a, b in itertools.pairwise(times)]
    close = all(abs(s - t) <= TOLERANCE_STOPS + 1e-6
                for s, t in zip(steps, np.diff(truth.stops)))
    exact = all(abs(t - u) <= 1e-6 * u for t, u in zip(times, truth.times))
    return close, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default=None,
                        help="comma-separated names (sources, or memorial) to run; default all")
    parser.add_argument("--tolerance", action="store_true",
                        help="only score merge on the Memorial clips with exposures off by a "
                             "third of a stop, and with what detection finds")
    args = parser.parse_args()
    if args.tolerance:
        tolerance()
        return
    wanted = set(args.clips.split(",")) if args.clips else None
    sources = [(s, lambda s, seed: synth.still_clip(DATA / "hdr" / f"{s}.exr", 24, 320, 180,
                                                     seed=seed)) for s in STILLS]
    sources += [(v, lambda v, seed: synth.ldr_video_clip(DATA / "ldr-video" / v, 24, 320, 180,
                                                          seed=seed)) for v in VIDEOS]
    close = right = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (name, make) in enumerate(sources):
            if wanted is not None and name not in wanted:
                continue
            truth = make(name, seed)
            for cycle in CYCLES:
                pattern = pattern_from_cycle(cycle)
                path = Path(tmp) / "clip.mp4"
                synth.write_alternating_clip(path, truth, pattern, seed=seed)
                try:
                    found = detect_exposure_pattern([f.rgb for f in read_frames(path)])
                    ok, exact = verdict(found.times, found.phase, pattern)
                    result = found.describe() + (f" [{found.assumed}]" if found.assumed else "")
                except ExposureError as exc:
                    ok, exact, result = False, False, f"error: {exc}"
                close, right, total = close + ok, right + exact, total + 1
                print(f"{_mark(ok, exact)} {name:15s} {cycle!s:12s} {result}", flush=True)
    print(f"{close} of {total} clips: cycle, phase and ratios within 1/3 stop ({right} exactly)")
    quality_clips(wanted)


def _mark(ok: bool, exact: bool) -> str:
    return "ok  " if exact else "near" if ok else "MISS"


def quality_clips(wanted: set[str] | None) -> None:
    """`hdrvid info` on the clips of benchmarks/quality.py (12 frames, 640×360)."""
    close = right = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        clips = [*simulated_clips(Path(tmp), 12, (640, 360)), *memorial_clips(Path(tmp), 12)]
        for clip in clips:
            if wanted is not None and clip.name not in wanted:
                continue
            truth = pattern_from_cycle(PATTERNS[clip.exposures])
            result = CliRunner().invoke(hdrvid_main, ["info", "--json", str(clip.path)])
            if result.exit_code == 0:
                found = json.loads(result.stdout)["exposures"]
                ok, exact = verdict(found["times"], found["phase"], truth)
                text = (f"{[round(t, 3) for t in found['times']]} phase {found['phase']}"
                        + (f" [{found['assumed']}]" if found["assumed"] else ""))
            else:
                ok, exact, text = False, False, result.output.strip()
            close, right, total = close + ok, right + exact, total + 1
            print(f"{_mark(ok, exact)} {clip.name:15s} {clip.exposures} {text}", flush=True)
    print(f"{close} of {total} benchmarks/quality.py clips: hdrvid info found the pattern "
          f"within 1/3 stop per step ({right} exactly)")


# per Memorial clip: the true exposures, steps a third of a stop off, what detection found
# before it measured static pairs pixel by pixel (2E), and None: what it finds now
VARIANTS = {"2E": ["1,8", "1,6.35", "1,10.08", "1,1.587", None],
            "3E": ["1,4,16", "1,5.04,25.4", "1,3.17,10.08", "1,4,12.7", "1,5.04,20.16", None]}


def tolerance() -> None:
    """PSNR-T of merge on the Memorial clips (12 frames, scored as benchmarks/quality.py
    scores them) with each exposure variant: how far off a ratio the conversion tolerates."""
    with tempfile.TemporaryDirectory() as tmp:
        for clip in memorial_clips(Path(tmp), 12):
            for exposures in VARIANTS[clip.exposures]:
                options = hdrvid.ConvertOptions(model="merge", exposures=exposures,
                                                overwrite=True, force_exposures=True)
                report = hdrvid.convert(clip.path, Path(tmp) / "out", options)
                scores = []
                for i, truth in enumerate(clip.truth):
                    pred = read_exr(Path(tmp) / "out" / frame_name(i))[0].astype(np.float32)
                    pred, truth = pred[clip.mask], truth[clip.mask]
                    scores.append(psnr_t(pred, truth / _scale(pred, truth)))
                used = ",".join(f"{t:.3g}" for t in report.pattern.times)
                print(f"memorial {clip.exposures} {exposures or 'detected':13s} ({used}) "
                      f"PSNR-T {np.mean(scores):.2f} dB", flush=True)


if __name__ == "__main__":
    main()
