"""The `hdrvid` command, run in-process with click's CliRunner (stderr captured separately)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_one_line_error, paced_hdrvid, render_clip, wait_for_files

from hdrvid.cli import main
from hdrvid.errors import HdrvidError
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr
from hdrvid.job import ConvertOptions
from hdrvid.registry import MODELS
from hdrvid.render import RenderOptions
from hdrvid.synth import procedural_scene, write_alternating_clip
from hdrvid.training.loop import TrainOptions

CLIP_NAMES = ["2exp_phase0", "2exp_phase1", "3exp_phase0", "3exp_phase1", "3exp_phase2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- help and models ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["convert"], ["info"], ["models"]])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(command, flag):
    result = run(*command, flag)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert result.stderr == ""


COMMANDS = ("convert", "tonemap", "info", "models", "eval", "weights", "train", "simulate",
            "calibrate")


def test_main_help_lists_the_commands():
    result = run("--help")
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == set(COMMANDS)


@pytest.mark.parametrize(("command", "options"), [("convert", ConvertOptions),
                                                  ("tonemap", RenderOptions),
                                                  ("info", ConvertOptions),
                                                  ("train", TrainOptions)])
def test_option_defaults_are_the_library_defaults(command, options):
    """Every option named after a field of the command's options dataclass defaults to that
    field's default, and --help shows it where it is a value."""
    fields = {f.name: f.default for f in dataclasses.fields(options)}
    context = click.Context(main.commands[command])
    params = {p.name: p for p in main.commands[command].params if p.name in fields}
    assert len(params) >= (2 if command == "info" else 10)
    for name, param in params.items():
        got = param.get_default(context)
        # train's flags default to None, dropped before TrainOptions is built
        assert got == fields[name] or (param.is_flag and got is None), name
    help_text = " ".join(run(command, "--help").stdout.split())
    for name, param in params.items():
        if param.show_default and not param.is_flag:
            assert f"[default: {fields[name]}" in help_text, name


def test_convert_with_no_options_runs_with_the_library_defaults(clip2, tmp_path, monkeypatch):
    """Nothing given: convert() receives ConvertOptions() as the library builds it."""
    import hdrvid.conversion

    seen = []

    def stop(path, out_dir, options, **kwargs):
        seen.append(options)
        raise HdrvidError("stopped before converting")

    monkeypatch.setattr(hdrvid.conversion, "convert", stop)
    result = run("convert", clip2.path, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "stopped before converting" in result.stderr
    assert seen == [ConvertOptions()]


def test_train_with_no_options_runs_with_the_library_defaults(tmp_path, monkeypatch):
    import hdrvid.training.loop

    seen = []

    def stop(run_dir, options):
        seen.append(options)
        raise HdrvidError("stopped before training")

    monkeypatch.setattr(hdrvid.training.loop, "check", stop)
    result = run("train", tmp_path / "run")
    assert result.exit_code == 1 and "stopped before training" in result.stderr
    assert seen == [TrainOptions()]


def test_only_the_entry_point_tunes_the_process():
    """`tune_process` changes the whole process for good: of the library, only the `hdrvid`
    entry point calls it (and Ray's actors, processes hdrvid starts to convert in), and
    importing the CLI does not."""
    import ast
    from pathlib import Path

    import hdrvid

    def calls_it(function: ast.AST) -> bool:
        return any(isinstance(node, ast.Call) and "tune_process" in
                   (getattr(node.func, "id", None), getattr(node.func, "attr", None))
                   for node in ast.walk(function))

    callers = {(path.stem, node.name) for path in Path(hdrvid.__file__).parent.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and calls_it(node)}
    assert ("cli", "main") in callers
    assert callers <= {("cli", "main"), ("cluster", "__init__")}, callers
    script = "import os, hdrvid.cli; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "None"


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert "0.1.0" in result.stdout


def test_models_json():
    result = run("models", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    for row in rows:
        assert {"name", "exposures", "window", "parameters"} <= set(row)
        assert isinstance(row["parameters"], int) and row["parameters"] >= 0
        assert row["window"] % 2 == 1
    variants = {(row["name"], row["exposures"]): row for row in rows}
    expected = {(name, period): window for name, spec in MODELS.items()
                for period, window in spec.windows.items()}
    assert {key: row["window"] for key, row in variants.items()} == expected
    assert variants["merge", 2]["window"] == 3  # the reference and one neighbour on each side
    assert variants["merge", 2]["parameters"] == 0 and variants["merge", 3]["parameters"] == 0
    assert variants["reference", 2]["window"] == variants["reference", 3]["window"] == 1
    assert variants["reference", 2]["parameters"] == 0


def test_models_table():
    result = run("models")
    assert result.exit_code == 0
    assert "merge" in result.stdout and "reference" in result.stdout


def test_models_table_fits_80_columns_and_says_which_to_use():
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) <= 3 * len(MODELS) + 6  # a few lines per model, not a wrapped wall
    assert "fast path" not in result.stdout
    row = {name: next(line for line in lines if line.split()[:1] == [name])
           for name in ("f2hdr", "merge")}
    assert "the default" in row["f2hdr"] and "faster" in row["merge"]
    hdrflow = " ".join(lines[lines.index(next(r for r in lines if r.startswith(" hdrflow"))):])
    assert "below merge" in hdrflow


# --- info --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLIP_NAMES)
def test_info_json_detects_the_pattern(clips_by_name, name):
    clip = clips_by_name[name]
    result = run("info", "--json", clip.path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["width"], data["height"], data["frame_count"]) == (256, 144, clip.n_frames)
    assert data["matrix"] == "bt709" and data["color_tagged"] is True
    exposures = data["exposures"]
    assert exposures["period"] == clip.pattern.period
    assert exposures["times"] == pytest.approx(list(clip.pattern.times))
    assert exposures["phase"] == clip.pattern.phase
    assert exposures["source"] == "detected"
    assert data["warnings"] == []


def test_info_table(clip2_high_first):
    result = run("info", clip2_high_first.path)
    assert result.exit_code == 0, result.output
    assert "frame 0 is high" in result.stdout
    assert "detected" in result.stdout


def test_info_with_exposures_in_the_wrong_order_warns(clip2):
    result = run("info", "--json", "--exposures", "8,1", clip2.path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["exposures"]["phase"] == 1  # the user's word is kept
    assert len(data["warnings"]) == 1 and "frame 0 is low" in data["warnings"][0]


def test_convert_refuses_exposures_the_video_contradicts_unless_forced(clip2, tmp_path):
    result = run("convert", clip2.path, "-o", tmp_path / "a", "--exposures", "8,1")
    assert_one_line_error(result, "frame 0 is low", "--force-exposures")
    assert not (tmp_path / "a").exists()
    result = run("convert", clip2.path, "-o", tmp_path / "b", "--exposures", "8,1",
                 "--force-exposures", "-m", "reference", "--frames", "8")
    assert result.exit_code == 0, result.output
    assert "frame 0 is low" in result.stderr and "flickers" in result.stderr


def test_forced_exposures_on_a_steady_video_warn_that_the_result_flickers(constant_clip,
                                                                          tmp_path):
    result = run("convert", constant_clip, "-o", tmp_path / "out", "--exposures", "1,8",
                 "--force-exposures", "-m", "reference", "--frames", "8", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.splitlines()[-1])
    assert any("flickers" in w for w in report["warnings"]), report["warnings"]
    sidecar = json.loads((tmp_path / "out" / "hdrvid.json").read_text())
    assert any("flickers" in w for w in sidecar["report"]["warnings"])


def test_a_right_conversion_does_not_warn_of_flicker(clip2, tmp_path):
    result = run("convert", clip2.path, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert not any("flicker" in w for w in json.loads(result.stdout.splitlines()[-1])["warnings"])


# --- errors ------------------------------------------------------------------------------------

def _bad_input(kind, tmp_path, constant_clip):
    if kind == "missing":
        return tmp_path / "missing.mp4"
    if kind == "directory":
        path = tmp_path / "folder.mp4"
        path.mkdir()
        return path
    if kind == "text":
        path = tmp_path / "x.mp4"
        path.write_text("this is not a video\n")
        return path
    return constant_clip


BAD_INPUTS = ["missing", "directory", "text", "not-alternating"]


@pytest.mark.parametrize("command", ["info", "convert"])
@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_gives_one_line_error_naming_the_file(tmp_path, constant_clip, command, kind):
    path = _bad_input(kind, tmp_path, constant_clip)
    out = tmp_path / "out"
    args = ["info", path] if command == "info" else ["convert", path, "-o", out]
    result = run(*args)
    if command == "info" and kind == "not-alternating":  # a readable video: details first
        assert result.stdout and "not found" in result.stdout
        result.stdout_bytes = b""
    assert_one_line_error(result, path)
    assert not out.exists() or not list(out.glob("frame_*.exr"))


@pytest.mark.parametrize("command", ["info", "convert"])
def test_non_alternating_video_error_mentions_exposures(tmp_path, constant_clip, command):
    args = ["info", constant_clip] if command == "info" else [
        "convert", constant_clip, "-o", tmp_path / "out"]
    result = run(*args)
    result.stdout_bytes = b""  # info shows the file's details before the error
    assert_one_line_error(result, "does not alternate", "--exposures")


@pytest.mark.parametrize("args, fragments", [
    (["--model", "nope"], ["unknown model 'nope'", "merge"]),
    (["--stops", "3"], ["--cycle"]),
])
def test_convert_option_errors(clip3, tmp_path, args, fragments):
    result = run("convert", clip3.path, "-o", tmp_path / "out", *args)
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize("args", [[], ["--cycle", "4"], ["--compression", "lz4"],
                                  ["--frames", "0"]])
def test_convert_usage_errors_exit_2(clip2, tmp_path, args):
    extra = [] if not args else ["-o", tmp_path / "out"]
    result = run("convert", clip2.path, *extra, *args)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr


# --- convert -----------------------------------------------------------------------------------

def test_convert_json_lines(clip2_high_first, tmp_path):
    out = tmp_path / "out"
    result = run("convert", clip2_high_first.path, "-o", out, "--model", "reference", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events[:-1]] == ["progress"] * clip2_high_first.n_frames
    assert [e["done"] for e in events[:-1]] == list(range(1, clip2_high_first.n_frames + 1))
    final = events[-1]
    assert final["event"] == "result"
    assert final["frames"] == clip2_high_first.n_frames
    assert final["exposures"]["phase"] == 1 and final["exposures"]["times"] == [1.0, 8.0]
    assert sorted(p.name for p in out.glob("frame_*.exr")) == [
        frame_name(i) for i in range(clip2_high_first.n_frames)]


def test_convert_prints_a_summary(clip2, tmp_path):
    result = run("convert", clip2.path, "-o", tmp_path / "out", "-m", "reference", "--frames", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "4 frames" in result.stderr.splitlines()[-1]


def test_peak_memory_is_the_conversions_own_when_another_process_starts_it(clip2, tmp_path):
    """A script with a 2 GB peak runs `hdrvid convert --json`: the report's host peak is the
    child's (a reference conversion of a small clip needs well under 1 GB), not the script's."""
    peak = np.ones(1 << 28)  # 2 GB, touched
    del peak
    child = subprocess.run([sys.executable, "-m", "hdrvid", "convert", str(clip2.path), "-o",
                            str(tmp_path / "out"), "-m", "reference", "--json"],
                           capture_output=True, text=True, check=True)
    report = json.loads(child.stdout.splitlines()[-1])
    assert 50 * 2**20 < report["host_peak_bytes"] < 2**30


@pytest.mark.parametrize("name, args", [
    ("2exp_phase1", ["--stops", "3", "--cycle", "2"]),
    ("3exp_phase2", ["--stops", "2", "--cycle", "3"]),
])
def test_convert_stops_and_cycle_detect_the_phase(clips_by_name, tmp_path, name, args):
    clip = clips_by_name[name]
    out = tmp_path / "out"
    result = run("convert", clip.path, "-o", out, "-m", "reference", "-q", "--frames", "4", *args)
    assert result.exit_code == 0, result.output
    exposures = json.loads((out / "hdrvid.json").read_text())["exposures"]
    assert exposures["source"] == "--stops"
    assert exposures["times"] == pytest.approx(list(clip.pattern.times))
    assert exposures["phase"] == clip.pattern.phase


def test_convert_with_an_exposure_file(clip3_mid_first, tmp_path):
    sidecar = tmp_path / "Exposures.txt"
    sidecar.write_text("".join(f"f{i}.png {[2, 4, 0][i % 3]}\n" for i in range(12)))
    out = tmp_path / "out"
    result = run("convert", clip3_mid_first.path, "-o", out, "-m", "reference", "-q",
                 "--exposure-file", sidecar)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "hdrvid.json").read_text())
    assert data["exposures"]["phase"] == 1
    assert [f["exposure"] for f in data["frames"]][:3] == [4.0, 16.0, 1.0]


def test_convert_with_a_changing_exposure_file_names_the_line(clip2, tmp_path):
    sidecar = tmp_path / "Exposures.txt"
    sidecar.write_text("0\n3\n0\n3\n0\n2\n")
    result = run("convert", clip2.path, "-o", tmp_path / "out", "--exposure-file", sidecar)
    assert_one_line_error(result, f"{sidecar}:6:")


def test_convert_overwrite(clip2, tmp_path):
    out = tmp_path / "out"
    first = run("convert", clip2.path, "-o", out, "-m", "reference", "-q")
    assert first.exit_code == 0, first.output
    assert len(list(out.glob("frame_*.exr"))) == clip2.n_frames

    again = run("convert", clip2.path, "-o", out, "-m", "reference", "-q", "--frames", "5")
    assert_one_line_error(again, out, "--overwrite")
    assert len(list(out.glob("frame_*.exr"))) == clip2.n_frames

    replaced = run("convert", clip2.path, "-o", out, "-m", "reference", "-q", "--frames", "5",
                   "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in out.glob("frame_*.exr")) == [frame_name(i) for i in range(5)]
    data = json.loads((out / "hdrvid.json").read_text())
    assert data["status"] == "complete" and len(data["frames"]) == 5


def test_convert_several_inputs_into_subfolders(clip2, clip3, tmp_path):
    out = tmp_path / "out"
    result = run("convert", clip2.path, clip3.path, "-o", out, "-m", "reference", "-q",
                 "--frames", "4")
    assert result.exit_code == 0, result.output
    for clip in (clip2, clip3):
        folder = out / clip.path.stem
        assert len(list(folder.glob("frame_*.exr"))) == 4
        assert json.loads((folder / "hdrvid.json").read_text())["exposures"]["period"] == \
            clip.pattern.period


def _interrupt_convert(clip, out, sig, after_frames):
    """Run `hdrvid convert` in a paced child, send ``sig`` once it has written
    ``after_frames`` frames: (its exit code, its stderr)."""
    child = paced_hdrvid("convert", clip, "-o", out, "-q")
    wait_for_files(out, "frame_*.exr", after_frames)
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=60)
    return child.returncode, stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_keeps_complete_frames(tmp_path, sig, code):
    """Ctrl-C / SIGTERM part-way: exit 130 / 143, every EXR written is whole, and hdrvid.json
    says the run is incomplete."""
    clip = tmp_path / "long.mp4"
    write_alternating_clip(clip, procedural_scene(60, 320, 180, seed=4), pattern_from_cycle([1, 8]))
    out = tmp_path / "out"
    returncode, stderr = _interrupt_convert(clip, out, sig, after_frames=3)
    assert returncode == code, stderr
    assert stderr.startswith("Interrupted: ") and len(stderr.strip().splitlines()) == 1
    sidecar = json.loads((out / "hdrvid.json").read_text())
    assert sidecar["status"] == "interrupted"
    frames = sorted(out.glob("frame_*.exr"))
    assert 3 <= len(frames) < 60
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no partial files
    for path in frames:
        assert read_exr(path)[0].shape == (180, 320, 3)


def test_resume_finishes_an_interrupted_run_exactly(tmp_path):
    """Kill a run part-way, damage one of its frames, --resume: the frames equal an uninterrupted
    run's, bit for bit, and only the missing or damaged ones were converted again."""
    clip = tmp_path / "clip.mp4"
    write_alternating_clip(clip, procedural_scene(40, 320, 180, seed=6), pattern_from_cycle([1, 8]))
    full = tmp_path / "full"
    assert run("convert", clip, "-o", full, "-q").exit_code == 0
    out = tmp_path / "out"
    _interrupt_convert(clip, out, signal.SIGINT, after_frames=4)
    kept = sorted(out.glob("frame_*.exr"))
    assert 4 <= len(kept) < 40
    kept[1].write_bytes(kept[1].read_bytes()[:2000])  # a damaged frame is converted again

    result = run("convert", clip, "-o", out, "--resume", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["frames"] == 40 and report["resumed"] == len(kept) - 1
    assert json.loads((out / "hdrvid.json").read_text())["status"] == "complete"
    for i in range(40):
        np.testing.assert_array_equal(read_exr(out / frame_name(i))[0],
                                      read_exr(full / frame_name(i))[0])


def test_resume_refuses_a_run_with_other_options(clip2, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "--model", "reference", "--frames", "4").exit_code == 0
    result = run("convert", clip2.path, "-o", out, "--resume")
    assert_one_line_error(result, out, "model reference", "--overwrite")


def test_continue_on_error_converts_the_rest_and_exits_1(clip2, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    out = tmp_path / "out"
    args = ["convert", clip2.path, bad, "-o", out, "--model", "reference", "--frames", "4"]
    stopped = run(*args)
    assert stopped.exit_code == 1 and not (out / "bad").exists()
    result = run(*args, "--continue-on-error", "--overwrite")
    assert result.exit_code == 1
    assert len(list((out / clip2.path.stem).glob("frame_*.exr"))) == 4
    assert "bad.mp4: not a video file" in result.stderr
    assert "failed" in result.stderr and "converted" in result.stderr  # the summary table


def test_out_of_memory_splits_the_batch_then_says_so(clip2, tmp_path, monkeypatch):
    """A batch that runs out of (GPU) memory is retried in halves with identical results; one
    window that does not fit is a one-line error naming the options to change."""
    from hdrvid.predictor import HdrPredictor

    real = HdrPredictor.predict_torch
    monkeypatch.setattr(HdrPredictor, "predict_torch", lambda self, ldr, times: (
        _raise_oom() if ldr.shape[0] > 1 else real(self, ldr, times)))
    args = ["convert", clip2.path, "--model", "reference", "--frames", "6", "-q"]
    assert run(*args, "-o", tmp_path / "batched", "--batch-size", "4").exit_code == 0
    monkeypatch.setattr(HdrPredictor, "predict_torch", real)
    assert run(*args, "-o", tmp_path / "single").exit_code == 0
    for i in range(6):
        np.testing.assert_array_equal(read_exr(tmp_path / "batched" / frame_name(i))[0],
                                      read_exr(tmp_path / "single" / frame_name(i))[0])

    monkeypatch.setattr(HdrPredictor, "predict_torch", lambda self, ldr, times: _raise_oom())
    result = run(*args, "-o", tmp_path / "none")
    assert_one_line_error(result, "out of CPU memory on one 256×144 window", "even in 64×64 tiles",
                          "--device cpu")


def test_a_window_out_of_memory_runs_in_tiles(clip2, tmp_path, monkeypatch):
    """One window too large for memory: the rest of the clip runs in tiles, with a warning."""
    from hdrvid.predictor import HdrPredictor

    real = HdrPredictor._run
    monkeypatch.setattr(HdrPredictor, "_run", lambda self, ldr, times: (
        _raise_oom() if max(ldr.shape[-2:]) > 128 else real(self, ldr, times)))
    result = run("convert", clip2.path, "--model", "reference", "--frames", "4", "--json",
                 "-o", tmp_path / "tiled")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout.splitlines()[-1])
    assert any("frames from 0 on run in 128×128 tiles" in w for w in done["warnings"])
    monkeypatch.setattr(HdrPredictor, "_run", real)
    assert run("convert", clip2.path, "--model", "reference", "--frames", "4", "-q",
               "-o", tmp_path / "whole").exit_code == 0
    for i in range(4):  # a pixelwise model: tiles give the same frames (to half-float rounding)
        np.testing.assert_allclose(read_exr(tmp_path / "tiled" / frame_name(i))[0],
                                   read_exr(tmp_path / "whole" / frame_name(i))[0], rtol=1e-3)


def _raise_oom():
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _rotate_in_container(source, target, clockwise: int = 90) -> None:
    """Copy an mp4, setting its video track's display matrix (tkhd) to a clockwise rotation, as
    phones store portrait video (PyAV cannot write one)."""
    import struct

    data = bytearray(source.read_bytes())
    at = data.find(b"tkhd") + 44  # the 3×3 matrix after version/flags, times, ids, layer, volume
    one, minus_one = 0x00010000, 0xFFFF0000
    matrix = {90: (0, one, 0, minus_one, 0, 0), 270: (0, minus_one, 0, one, 0, 0),
              180: (minus_one, 0, 0, 0, minus_one, 0)}[clockwise]
    data[at:at + 36] = struct.pack(">9I", *matrix, 0, 0, 0x40000000)
    target.write_bytes(bytes(data))


@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, clockwise):
    """A video with a display rotation converts upright, as players show it, whether the
    host or the device (here torch on the CPU) turns Y'CbCr into R'G'B'."""
    from conftest import render_clip

    clip = render_clip(tmp_path / "upright.mp4", (1, 8), 4, width=96, height=64)
    _rotate_in_container(clip.path, tmp_path / "rotated.mp4", clockwise)
    info = json.loads(run("info", tmp_path / "rotated.mp4", "--json").stdout)
    assert (info["width"], info["height"], info["rotation"]) == (
        (64, 96) if clockwise != 180 else (96, 64)) + (clockwise,)
    for name, yuv_on in [("upright", "host"), ("rotated", "host"), ("rotated", "device")]:
        result = run("convert", tmp_path / f"{name}.mp4", "-o", tmp_path / f"{name}-{yuv_on}",
                     "--model", "reference", "--exposures", "1,8", "--yuv-on", yuv_on, "-q")
        assert result.exit_code == 0, result.output
    for i in range(4):
        upright = np.rot90(read_exr(tmp_path / "upright-host" / frame_name(i))[0], k=-clockwise // 90)
        np.testing.assert_array_equal(read_exr(tmp_path / "rotated-host" / frame_name(i))[0],
                                      upright)
        np.testing.assert_allclose(read_exr(tmp_path / "rotated-device" / frame_name(i))[0],
                                   upright, rtol=1e-3)


def test_a_size_change_mid_stream_stops_with_the_frame(tmp_path):
    from hdrvid.encode import VideoWriter

    parts = []
    for name, (w, h) in [("a", (128, 96)), ("b", (160, 96))]:
        with VideoWriter(tmp_path / f"{name}.ts", w, h) as writer:
            for i in range(6):
                writer.write(np.full((h, w, 3), 0.1 + 0.6 * (i % 2), np.float32))
        parts.append((tmp_path / f"{name}.ts").read_bytes())
    mixed = tmp_path / "mixed.ts"
    mixed.write_bytes(b"".join(parts))
    result = run("convert", mixed, "-o", tmp_path / "out", "-m", "reference", "--exposures",
                 "1,8", "-q")
    assert_one_line_error(result, "mixed.ts: frame 6 is 160×96 but the video starts at 128×96",
                          "split it where the size changes")


def test_a_read_only_output_is_a_one_line_error(clip2, tmp_path, monkeypatch):
    """Writes refused by the file system (a read-only mount; as root chmod cannot show it)."""
    from hdrvid import exr

    def refuse(path, rgb, header):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(exr, "write_exr", refuse)
    result = run("convert", clip2.path, "-o", tmp_path / "out", "-m", "reference", "-q")
    assert_one_line_error(result, "Permission denied", "0 complete frames are in")


def _write_odd_sized_clip(path, width: int, height: int, frames: int) -> list[np.ndarray]:
    """4:4:4 H.264 keeps odd sizes (4:2:0, which VideoWriter writes, needs even ones)."""
    import av

    scene = list(procedural_scene(frames, width, height, seed=5))
    pattern = pattern_from_cycle([1, 8])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.codec_context.colorspace = 1  # bt709, so decoding needs no guess
        stream.codec_context.color_range = 1
        for i, hdr in enumerate(scene):
            ldr = np.clip(hdr * pattern.time(i), 0, 1) ** (1 / 2.2)
            image = (ldr * 255 + 0.5).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return scene


@pytest.mark.parametrize("model", ["reference", "merge"])
def test_odd_frame_sizes_convert_at_their_own_size(tmp_path, model):
    """161×91 (as 1919×1079 is): outputs keep the odd size, no padding row or column."""
    clip = tmp_path / "odd.mp4"
    truth = _write_odd_sized_clip(clip, 161, 91, 6)
    info = json.loads(run("info", clip, "--json").stdout)
    assert (info["width"], info["height"]) == (161, 91)
    result = run("convert", clip, "-o", tmp_path / "out", "-m", model, "--exposures", "1,8",
                 "-q")
    assert result.exit_code == 0, result.output
    for i in range(6):
        pixels = read_exr(tmp_path / "out" / frame_name(i))[0]
        assert pixels.shape == (91, 161, 3)
        # the last row and column are real picture, not padding: compare where they are unclipped
        edge = np.concatenate([pixels[-1], pixels[:, -1]])
        truth_edge = np.concatenate([truth[i][-1], truth[i][:, -1]])
        unclipped = truth_edge * (1 if i % 2 == 0 else 8) < 0.9
        np.testing.assert_allclose(edge[unclipped].mean(), truth_edge[unclipped].mean(), rtol=0.1)


def test_ten_bit_input_through_the_cli(tmp_path):
    """10-bit HEVC decodes at 10 bits (no 8-bit banding) and is detected without help."""
    clip = tmp_path / "ten_bit.mp4"
    truth = write_alternating_clip(clip, procedural_scene(6, 128, 96, seed=8),
                                   pattern_from_cycle([8, 1]), bits=10, seed=8)
    info = json.loads(run("info", clip, "--json").stdout)
    assert info["bit_depth"] == 10 and info["exposures"]["times"] == [1.0, 8.0]
    result = run("convert", clip, "-o", tmp_path / "out", "-m", "reference", "-q")
    assert result.exit_code == 0, result.output
    dark = read_exr(tmp_path / "out" / frame_name(0))[0]  # frame 0 is the long exposure
    # back to code values: a 10-bit decode uses far more than the 256 levels 8 bits could hold
    codes = np.round((dark.astype(np.float32) * 8) ** (1 / 2.2) * 1023)
    assert len(np.unique(codes)) > 400
    np.testing.assert_allclose(np.median(dark), np.median(np.clip(truth[0] * 8, 0, 1) / 8),
                               rtol=0.05)


def test_profile_prints_each_stage_and_the_bottleneck(clip2, tmp_path):
    result = run("convert", clip2.path, "-o", tmp_path / "out", "-m", "reference", "--profile")
    assert result.exit_code == 0, result.output
    for stage in ("decode", "prepare", "model", "write", "decode_wait", "write_wait"):
        assert f"│ {stage} " in result.stderr
    assert "bottleneck: " in result.stderr
    result = run("convert", clip2.path, "-o", tmp_path / "json", "-m", "reference", "--json")
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["bottleneck"] in ("decode", "compute", "write")
    # the bottleneck sustains the fewest frames per second, and at least the run's own rate
    sustained = report["throughput"]
    assert sustained[report["bottleneck"]] == min(v for v in sustained.values() if v)
    assert sustained[report["bottleneck"]] >= report["fps"] * 0.9
    cores = torch.get_num_threads()
    assert (report["batch_size"], report["threads_per_window"], report["parallel_windows"]) == (
        1, cores, False)


def test_profile_says_how_the_windows_ran(clip2, tmp_path):
    """hdrflow on the CPU: one window per core, at once, one thread each (2 cores here)."""
    args = ["convert", clip2.path, "-m", "hdrflow", "--frames", "4", "--device", "cpu"]
    result = run(*args, "-o", tmp_path / "out", "--profile", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    cores = torch.get_num_threads()
    if cores >= 2:
        assert f"model: 2 window(s) per call, run at once, {cores // 2} torch thread(s) each" \
            in result.stderr
    report = json.loads(run(*args, "-o", tmp_path / "json", "--json", "--batch-size", "1")
                        .stdout.splitlines()[-1])
    assert (report["batch_size"], report["threads_per_window"], report["parallel_windows"]) == (
        1, cores, False)


# --- smaller points of issue 24 ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "1", "8,8", "1,2,3,4", "16,4,1"])
def test_a_bad_exposures_value_is_a_usage_error(clip2, tmp_path, value):
    result = run("convert", clip2.path, "-o", tmp_path / "out", "--exposures", value)
    assert result.exit_code == 2, result.output
    assert "--exposures" in result.stderr
    assert not (tmp_path / "out").exists()


def test_one_frame_is_not_frames(clip2, tmp_path):
    one = render_clip(tmp_path / "one.mp4", (1, 8), 1).path  # --frames 1 decodes a whole cycle
    result = run("convert", one, "-o", tmp_path / "out", "--exposures", "1,8",
                 "--force-exposures", "-m", "reference")
    assert_one_line_error(result, "a clip of 1 frame is shorter")
    assert "1 frames" not in result.stderr
    result = run("convert", clip2.path, "-o", tmp_path / "out1", "--frames", "1", "-m", "reference")
    assert result.exit_code == 0 and ": 1 frame ->" in result.stderr


def test_tonemap_takes_the_operator_under_converts_name(clip2, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "--frames", "4", "-m", "reference",
               "-q").exit_code == 0
    result = run("tonemap", out, "-o", tmp_path / "png", "--tonemap", "reinhard", "-q")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "png").glob("*.png"))) == 4


def test_rerunning_into_an_interrupted_folder_suggests_resume(clip2, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "--frames", "4", "-m", "reference",
               "-q").exit_code == 0
    sidecar = json.loads((out / "hdrvid.json").read_text())
    (out / "hdrvid.json").write_text(json.dumps({**sidecar, "status": "interrupted"}))
    result = run("convert", clip2.path, "-o", out, "-m", "reference")
    assert_one_line_error(result, "--resume", "--overwrite")


def test_info_on_a_video_that_does_not_alternate_shows_its_details_then_what_is_missing(
        constant_clip):
    result = run("info", constant_clip)
    assert result.exit_code == 1
    assert "256×144" in result.stdout and "not found" in result.stdout  # the file's details
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--exposures" in lines[0]
    data = json.loads(run("info", "--json", constant_clip).stdout)
    assert data["width"] == 256 and data["exposures"] is None and "--exposures" in data["error"]
