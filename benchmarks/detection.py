"""How often exposure detection recovers cycle, phase and ratios on clips from ../shared/data.

Every source of benchmarks/quality.py at 320×180, 24 frames, as 2-exposure (1:8 starting low and
high, 1:4) and 3-exposure (1:4:16 in all three phases) clips with camera or real motion; then
`hdrvid info --json`, without hints, on the very clips benchmarks/quality.py converts (the
simulated ones and the Memorial Church stack).

    python benchmarks/detection.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from quality import DATA, PATTERNS, STILLS, VIDEOS, memorial_clips, simulated_clips

from hdrvid import synth
from hdrvid.cli import main as hdrvid_main
from hdrvid.errors import ExposureError
from hdrvid.exposure import detect_exposure_pattern, pattern_from_cycle
from hdrvid.video import read_frames

CYCLES = [(1, 8), (8, 1), (1, 4), (1, 4, 16), (16, 1, 4), (4, 16, 1)]


def main() -> None:
    sources = [(s, lambda s, seed: synth.still_clip(DATA / "hdr" / f"{s}.exr", 24, 320, 180,
                                                     seed=seed)) for s in STILLS]
    sources += [(v, lambda v, seed: synth.ldr_video_clip(DATA / "ldr-video" / v, 24, 320, 180,
                                                          seed=seed)) for v in VIDEOS]
    right = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (name, make) in enumerate(sources):
            truth = make(name, seed)
            for cycle in CYCLES:
                pattern = pattern_from_cycle(cycle)
                path = Path(tmp) / "clip.mp4"
                synth.write_alternating_clip(path, truth, pattern, seed=seed)
                try:
                    found = detect_exposure_pattern([f.rgb for f in read_frames(path)])
                    ok = (found.times, found.phase) == (pattern.times, pattern.phase)
                    result = found.describe()
                except ExposureError as exc:
                    ok, result = False, f"error: {exc}"
                right, total = right + ok, total + 1
                print(f"{'ok  ' if ok else 'MISS'} {name:15s} {cycle!s:12s} {result}")
    print(f"{right} of {total} clips: cycle, phase and ratios recovered exactly")
    quality_clips()


def quality_clips() -> None:
    """`hdrvid info` on the clips of benchmarks/quality.py (12 frames, 640×360)."""
    right = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        clips = [*simulated_clips(Path(tmp), 12, (640, 360)), *memorial_clips(Path(tmp), 12)]
        for clip in clips:
            truth = pattern_from_cycle(PATTERNS[clip.exposures])
            result = CliRunner().invoke(hdrvid_main, ["info", "--json", str(clip.path)])
            if result.exit_code == 0:
                found = json.loads(result.stdout)["exposures"]
                ok = (tuple(found["times"]), found["phase"]) == (truth.times, truth.phase)
                text = f"{found['times']} phase {found['phase']}"
            else:
                ok, text = False, result.output.strip()
            right, total = right + ok, total + 1
            print(f"{'ok  ' if ok else 'MISS'} {clip.name:15s} {clip.exposures} {text}")
    print(f"{right} of {total} benchmarks/quality.py clips: hdrvid info found the pattern")


if __name__ == "__main__":
    main()
