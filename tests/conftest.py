"""Shared fixtures: small alternating-exposure clips rendered with PyAV from known linear HDR
scenes (`hdrvid.synth`), and cached conversions of them.

Every clip is written once per session into a tmp_path_factory folder. Clips are small
(256×144, 12-18 frames) so that the whole suite runs in well under a few minutes on 2 cores.
"""

from __future__ import annotations

import fractions
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from hdrvid.encode import VideoWriter
from hdrvid.exposure import ExposurePattern, pattern_from_cycle
from hdrvid.synth import expose, procedural_scene, write_alternating_clip

# The merge model runs many small torch ops per frame. On a 2-core machine that is also busy with
# something else, torch's default of one thread per core made `convert` ~50x slower (40 s instead
# of 0.8 s for 18 frames at 256x144): keep the suite's run time predictable. Values are unchanged.
torch.set_num_threads(1)

WIDTH, HEIGHT = 256, 144
FPS = 24
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# --- markers -----------------------------------------------------------------------------------

def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is missing")
    for item in items:
        if "requires_shared_data" in item.keywords:
            item.add_marker(skip)


# --- clips -------------------------------------------------------------------------------------

@dataclass
class Clip:
    """A rendered clip: its file, the pattern it was exposed with, and the linear ground truth."""

    path: Path
    cycle: tuple[float, ...]          # relative times of frames 0, 1[, 2] as given to the writer
    pattern: ExposurePattern
    truth: list[np.ndarray] = field(repr=False)
    pts: list[int] | None = None
    time_base: fractions.Fraction | None = None

    @property
    def n_frames(self) -> int:
        return len(self.truth)


def render_clip(path: Path, cycle, n_frames: int, seed: int = 1, width: int = WIDTH,
                height: int = HEIGHT, **kwargs) -> Clip:
    pattern = pattern_from_cycle(cycle)
    scene = procedural_scene(n_frames, width, height, seed=seed)
    truth = write_alternating_clip(path, scene, pattern, fps=FPS, seed=seed, **kwargs)
    return Clip(Path(path), tuple(float(c) for c in cycle), pattern, truth,
                kwargs.get("pts"), kwargs.get("time_base"))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def clip2(clip_dir) -> Clip:
    """2 exposures, 3 stops apart (times 1, 8), frame 0 low, with motion."""
    return render_clip(clip_dir / "two_exp.mp4", (1, 8), 16)


@pytest.fixture(scope="session")
def clip3(clip_dir) -> Clip:
    """3 exposures, 2 stops apart (times 1, 4, 16), frame 0 low, with motion."""
    return render_clip(clip_dir / "three_exp.mp4", (1, 4, 16), 18)


@pytest.fixture(scope="session")
def clip2_high_first(clip_dir) -> Clip:
    """2 exposures with frame 0 high (phase 1)."""
    return render_clip(clip_dir / "two_exp_high_first.mp4", (8, 1), 12, seed=2)


@pytest.fixture(scope="session")
def clip3_mid_first(clip_dir) -> Clip:
    """3 exposures with frame 0 mid (phase 1)."""
    return render_clip(clip_dir / "three_exp_mid_first.mp4", (4, 16, 1), 12, seed=3)


@pytest.fixture(scope="session")
def clip3_high_first(clip_dir) -> Clip:
    """3 exposures with frame 0 high (phase 2)."""
    return render_clip(clip_dir / "three_exp_high_first.mp4", (16, 1, 4), 12, seed=4)


@pytest.fixture(scope="session")
def clips_by_name(clip2, clip3, clip2_high_first, clip3_mid_first, clip3_high_first) -> dict:
    return {"2exp_phase0": clip2, "3exp_phase0": clip3, "2exp_phase1": clip2_high_first,
            "3exp_phase1": clip3_mid_first, "3exp_phase2": clip3_high_first}


@pytest.fixture(scope="session")
def constant_clip(clip_dir) -> Path:
    """The moving procedural scene at one constant exposure (t = 4): not alternating."""
    path = clip_dir / "constant.mp4"
    rng = np.random.default_rng(5)
    with VideoWriter(path, WIDTH, HEIGHT, fps=FPS, crf=12) as writer:
        for hdr in procedural_scene(12, WIDTH, HEIGHT, seed=5):
            writer.write(expose(hdr, 4.0, rng))
    return path


# Variable frame rate: irregular steps in milliseconds
VFR_PTS = [0, 40, 80, 130, 170, 230, 260, 300, 350, 390, 440, 480]
VFR_TIME_BASE = fractions.Fraction(1, 1000)


@pytest.fixture(scope="session")
def vfr_clip(clip_dir) -> Clip:
    return render_clip(clip_dir / "vfr.mp4", (1, 8), len(VFR_PTS), seed=6, pts=VFR_PTS,
                       time_base=VFR_TIME_BASE)


# --- conversions (cached per session) ----------------------------------------------------------

@pytest.fixture(scope="session")
def convert_cached(tmp_path_factory):
    """``convert_cached(clip, **options)`` -> output folder; each distinct call runs once."""
    from hdrvid import ConvertOptions, convert

    root = tmp_path_factory.mktemp("converted")
    cache: dict = {}

    def run(clip: Clip, **options) -> Path:
        key = (str(clip.path), tuple(sorted(options.items())))
        if key not in cache:
            out = root / f"out{len(cache)}"
            shutil.rmtree(out, ignore_errors=True)
            convert(clip.path, out, ConvertOptions(**options))
            cache[key] = out
        return cache[key]

    return run


# A child `hdrvid` whose EXR writer waits after each frame it queues: a test that interrupts a
# run once some frames exist must find it still running, however loaded the machine is and
# however fast the conversion. The CLI and writer are the real ones; pacing and the thread count
# (the tests' own, so a resumed run can equal an uninterrupted one bit for bit) are all it changes.
_PACED_HDRVID = """
import sys, time
import torch
from hdrvid import exr
torch.set_num_threads(1)  # as the tests' process: a network's output can depend on it
from hdrvid.cli import main
queue_frame = exr.ExrSequenceWriter.write
def paced(self, *args, **kwargs):
    queue_frame(self, *args, **kwargs)
    time.sleep(0.25)
exr.ExrSequenceWriter.write = paced
sys.argv[0] = "hdrvid"
main()
"""


def paced_hdrvid(*args) -> subprocess.Popen:
    """Start ``hdrvid ARGS`` in a child whose frames are written at most four a second;
    stderr is piped as text."""
    return subprocess.Popen([sys.executable, "-c", _PACED_HDRVID, *map(str, args)],
                            stderr=subprocess.PIPE, text=True)


def wait_for_files(folder: Path, pattern: str, count: int, timeout: float = 60) -> None:
    """Poll until ``folder`` holds ``count`` files matching ``pattern`` (or time runs out)."""
    deadline = time.monotonic() + timeout
    while len(list(folder.glob(pattern))) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _exr_header(path: Path) -> dict:
    """The header of an EXR file, read with OpenEXR directly.

    `hdrvid.exr.read_exr` currently returns an empty header (see
    test_exr.py::test_read_exr_returns_the_header), so header checks read it here.
    """
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        return dict(f.header())


def _read_output(out: Path, n: int) -> list[np.ndarray]:
    """The first n EXR frames of an output folder as float32 arrays."""
    from hdrvid.exr import frame_name, read_exr

    return [read_exr(out / frame_name(i))[0].astype(np.float32) for i in range(n)]


@pytest.fixture(scope="session")
def exr_header():
    return _exr_header


@pytest.fixture(scope="session")
def read_output():
    return _read_output


@pytest.fixture(autouse=True)
def empty_official_cache(tmp_path_factory, monkeypatch):
    """Every test sees an empty cache of the authors' weights (`hdrvid weights pull`), never the
    user's: what a test expects of `-m lan-hdr` must not depend on what was pulled here."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_ASSETS_CACHE", str(tmp_path_factory.mktemp("hf-assets")))


@pytest.fixture
def training_data(monkeypatch) -> Path:
    """The training data folder as `hdrvid train` finds it without --data: $HDRVID_DATA, set for
    this test alone (the library never guesses ../shared/data)."""
    if not (SHARED_DATA / "hdr").is_dir():
        pytest.skip(f"{SHARED_DATA} is missing")
    monkeypatch.setenv("HDRVID_DATA", str(SHARED_DATA))
    return SHARED_DATA


# --- helpers shared by test modules ------------------------------------------------------------

def assert_one_line_error(result, *fragments):
    """A CLI failure: exit 1, one stderr line "Error: ..." holding every fragment, no stdout."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert str(fragment) in lines[0]
    assert result.stdout == ""


def requires_optional(metric: str) -> None:
    """Skip unless the optional metric's package imports (a broken install counts as missing)."""
    from hdrvid import metrics

    reason = metrics.missing_optional(metric)
    if reason:
        pytest.skip(reason)


CHECKPOINTS = Path(__file__).parent / "checkpoints"  # copies of ../shared/docs/checkpoints/*.tsv


def official_layout(name: str) -> dict[str, tuple[int, ...]]:
    """Every entry of an official state dict with its shape, e.g. ``official_layout("lan-hdr-2e")``."""
    layout = {}
    for line in (CHECKPOINTS / f"{name}.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")[:2]
        layout[key] = () if shape == "()" else tuple(int(n) for n in shape.split("x"))
    return layout


def save_official(state: dict, path: Path, key: str | None = None, prefix: str = "",
                  **extra) -> Path:
    """Save ``state`` as an official checkpoint would be: ``{key: {prefix + name: tensor}}`` plus
    ``extra`` entries (optimiser state, epoch, ...), with plain ``torch.save``."""
    state = {prefix + name: tensor.detach().clone() for name, tensor in state.items()}
    torch.save({key: state, **extra} if key else state, path)
    return path


def randomized(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """``module`` with every floating-point parameter and buffer redrawn from N(0, scale²)
    (a stand-in for trained weights: a loaded file then differs from the built defaults).
    BatchNorm running variances are drawn from [0.5, 1.5] so they stay positive."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
    return module


def T(x: float) -> float:
    """The μ-law curve of docs/conventions.md §8, written out: clip to [0, 1], μ = 5000."""
    return math.log1p(5000 * min(max(x, 0.0), 1.0)) / math.log1p(5000)
