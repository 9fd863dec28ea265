"""Damaged inputs: truncated and byte-flipped clips and EXR files give a clean one-line error
(or, where the damage is harmless, a normal result), never a traceback, crash or hang."""

import random

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from hdrvid.cli import main
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, write_exr
from hdrvid.synth import procedural_scene, write_alternating_clip


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "clip.mkv"
    write_alternating_clip(path, procedural_scene(16, 128, 96, seed=1), pattern_from_cycle([1, 8]))
    return path.read_bytes()


def _damaged(data: bytes, case: int) -> bytes:
    rng = random.Random(case)
    if case < 8:  # truncated at 20 %, 30 %, ... 90 %
        return data[: len(data) * (2 + case) // 10]
    damaged = bytearray(data)
    for _ in range(rng.choice([1, 5, 20, 100])):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    return bytes(damaged)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("case", range(24))
def test_damaged_clips_fail_cleanly(small_clip, tmp_path, case):
    path = tmp_path / "damaged.mkv"
    path.write_bytes(_damaged(small_clip, case))
    result = _run("convert", path, "-o", tmp_path / "out", "--model", "reference",
                  "--exposures", "1,8", "-q")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if result.exit_code:
        assert_one_line_error(result, path)
    if case < 8:  # every truncation loses frames, and says so (or cannot be read at all, or
        # what is left no longer shows the exposures given: refused before converting)
        assert result.exit_code == 1
        assert ("truncated" in result.stderr or "too few frames" in result.stderr
                or "not a video file" in result.stderr
                or "neighbouring frames differ" in result.stderr), result.stderr


@pytest.mark.parametrize("case", range(12))
def test_damaged_exr_sequences_fail_cleanly(tmp_path, case):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        image = np.random.default_rng(i).random((64, 96, 3)).astype(np.float16)
        write_exr(folder / frame_name(i), image, {})
    target = folder / frame_name(1)
    target.write_bytes(_damaged(target.read_bytes(), case))
    for command in (["tonemap", folder, "-o", tmp_path / "pngs", "-q"],
                    ["eval", folder, folder, "--metrics", "psnr-t"]):
        result = _run(*command)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exception
        if result.exit_code:
            assert_one_line_error(result, target.name)
