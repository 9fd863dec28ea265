"""`hdrvid simulate`: clips with ground truth from EXR sequences, HDR stills and LDR video."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA, assert_one_line_error

from hdrvid.cli import main
from hdrvid.exr import ExrSequenceWriter, frame_name, read_exr
from hdrvid.synth import procedural_scene


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def exr_sequence(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    writer = ExrSequenceWriter(folder, half=False)
    for i, frame in enumerate(procedural_scene(8, 96, 64, seed=4)):
        writer.write(i, frame)
    writer.close()
    return folder


def test_simulate_an_exr_sequence_then_convert_it_back(exr_sequence, tmp_path):
    sim = tmp_path / "sim"
    result = run("simulate", exr_sequence, "-o", sim, "--cycle", "3", "--stops", "2",
                 "--phase", "1", "--frames", "6", "--size", "96x64", "--seed", "3")
    assert result.exit_code == 0, result.output
    stops = [float(line.split()[-1]) for line in (sim / "exposures.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert stops == [2, 4, 0, 2, 4, 0]
    truth = [read_exr(sim / "gt" / frame_name(i))[0] for i in range(6)]
    assert truth[0].shape == (64, 96, 3)
    luminance = truth[0].astype(np.float32) @ np.float32([0.2126, 0.7152, 0.0722])
    assert np.percentile(luminance, 99.5) == pytest.approx(1.0, rel=2e-3)  # shortest clips at 1
    out = tmp_path / "out"
    converted = run("convert", sim / "input.mp4", "-o", out, "--exposure-file",
                    sim / "exposures.txt", "-q")
    assert converted.exit_code == 0, converted.output
    scores = json.loads(run("eval", out, sim / "gt", "--json").stdout)
    assert scores["mean"]["psnr-t"] > 30


@pytest.mark.parametrize("bits", [8, 10])
def test_simulate_is_deterministic_for_a_seed(exr_sequence, tmp_path, bits):
    # two runs as users make them, each in its own process: in one long-lived process (after
    # ~400 tests) the encoder now and then wrote different bytes from byte-identical frames
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "hdrvid", "simulate", str(exr_sequence), "-o",
                        str(tmp_path / name), "--frames", "3", "--size", "96x64", "--seed", "9",
                        "--bits", str(bits)], check=True, capture_output=True)
    for path in ("input.mp4", "exposures.txt", "gt/frame_000002.exr"):
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
    other = tmp_path / "other-seed"
    assert run("simulate", exr_sequence, "-o", other, "--frames", "3", "--size", "96x64",
               "--seed", "10", "--bits", bits).exit_code == 0
    assert (other / "input.mp4").read_bytes() != (tmp_path / "a" / "input.mp4").read_bytes()


def test_simulate_refuses_to_overwrite_and_bad_sources(exr_sequence, tmp_path):
    assert run("simulate", exr_sequence, "-o", tmp_path, "--frames", "2", "--size",
               "96x64").exit_code == 0
    assert_one_line_error(run("simulate", exr_sequence, "-o", tmp_path), "pass --overwrite")
    assert_one_line_error(run("simulate", tmp_path / "nothing", "-o", tmp_path / "x"),
                          "nothing: no such file or folder")


@pytest.mark.requires_shared_data
@pytest.mark.parametrize("source", ["hdr/Cannon.exr", "ldr-video/dog"])
def test_simulate_from_shared_data(source, tmp_path):
    result = run("simulate", SHARED_DATA / source, "-o", tmp_path, "--frames", "4", "--size",
                 "128x96")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "gt").glob("*.exr"))) == 4
    first, last = (read_exr(tmp_path / "gt" / frame_name(i))[0] for i in (0, 3))
    assert not np.array_equal(first, last)  # the camera or the scene moved
