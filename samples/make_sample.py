"""Regenerate samples/lamps-2exp.mp4: the procedural HDR scene of `hdrvid.synth`, recorded as a
2-exposure clip (relative exposures 1 and 8, 3 stops apart, frame 0 short), 640×360, 24 fps.

    python samples/make_sample.py
"""

from pathlib import Path

from hdrvid import synth
from hdrvid.exposure import pattern_from_cycle

FRAMES, WIDTH, HEIGHT = 24, 640, 360

if __name__ == "__main__":
    out = Path(__file__).with_name("lamps-2exp.mp4")
    scene = synth.procedural_scene(FRAMES, WIDTH, HEIGHT, seed=7)
    synth.write_alternating_clip(out, scene, pattern_from_cycle([1, 8]), fps=24, seed=7, crf=16)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
