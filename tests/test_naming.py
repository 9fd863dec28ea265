"""Output names as ffmpeg users expect them (issue 24, point 7): a video name is that video file,
a name hdrvid cannot write is refused, one PNG is one file, inputs sharing a stem get folders
of their own."""

import json
import shutil

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from hdrvid.cli import main
from hdrvid.exr import frame_name, read_exr


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _frames_in(video):
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_video_name_with_one_video_format_is_that_file(clip2, tmp_path):
    out = tmp_path / "out"
    result = run("convert", clip2.path, "-o", out / "result.mp4", "--format", "sdr",
                 "-m", "reference", "--frames", "4", "-q")
    assert result.exit_code == 0, result.output
    assert (out / "result.mp4").is_file()
    assert _frames_in(out / "result.mp4") == 4
    assert [p.name for p in out.iterdir()] == ["result.mp4"]  # no folder, no leftovers

    again = run("convert", clip2.path, "-o", out / "result.mp4", "--format", "sdr",
                "-m", "reference", "--frames", "4", "-q")
    assert_one_line_error(again, "result.mp4: exists", "--overwrite")
    replaced = run("convert", clip2.path, "-o", out / "result.mp4", "--format", "sdr",
                   "-m", "reference", "--frames", "6", "-q", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert _frames_in(out / "result.mp4") == 6


@pytest.mark.parametrize("fmt, what", [("exr", "writes an EXR sequence into a folder"),
                                       ("all", "writes EXRs and two videos into a folder")])
def test_a_video_name_with_exr_output_is_refused(clip2, tmp_path, fmt, what):
    target = tmp_path / "out" / "result.mp4"
    result = run("convert", clip2.path, "-o", target, "--format", fmt, "-m", "reference")
    assert_one_line_error(result, "result.mp4", what, "name a folder")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["x.avi", "x.png", "x.exr"])
def test_convert_refuses_media_names_it_cannot_write(clip2, tmp_path, name):
    result = run("convert", clip2.path, "-o", tmp_path / name, "-m", "reference")
    assert_one_line_error(result, name, "hdrvid does not write")
    assert not (tmp_path / name).exists()


def test_several_inputs_and_one_video_name_is_a_usage_error(clip2, clip3, tmp_path):
    result = run("convert", clip2.path, clip3.path, "-o", tmp_path / "r.mp4", "--format", "sdr")
    assert result.exit_code == 2 and "name a folder" in result.stderr


def test_inputs_sharing_a_stem_get_folders_of_their_own(clip2, clip2_high_first, tmp_path):
    for folder, clip in (("a", clip2), ("b", clip2_high_first)):
        (tmp_path / folder).mkdir()
        shutil.copy(clip.path, tmp_path / folder / "still.mp4")
    out = tmp_path / "out"
    result = run("convert", tmp_path / "a" / "still.mp4", tmp_path / "b" / "still.mp4", "-o", out,
                 "-m", "reference", "--frames", "4", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["still", "still-2"]
    for folder, source, phase in (("still", "a", 0), ("still-2", "b", 1)):
        sidecar = json.loads((out / folder / "hdrvid.json").read_text())
        assert sidecar["input"]["path"] == str(tmp_path / source / "still.mp4")
        assert sidecar["exposures"]["phase"] == phase  # each folder holds its own input
        assert len(list((out / folder).glob("frame_*.exr"))) == 4


def test_input_folders_number_repeated_stems_in_order(tmp_path):
    from hdrvid.cli import input_folders

    paths = [tmp_path / "a" / "still.mp4", tmp_path / "still-2.mov", tmp_path / "b" / "still.mkv",
             tmp_path / "other.mp4"]
    assert input_folders(tuple(paths)) == ["still", "still-2", "still-3", "other"]


@pytest.fixture(scope="module")
def exrs(clip2, tmp_path_factory):
    out = tmp_path_factory.mktemp("exrs")
    assert run("convert", clip2.path, "-o", out, "-m", "reference", "--frames", "4",
               "-q").exit_code == 0
    return out


def test_tonemap_one_exr_to_one_png_file(exrs, tmp_path):
    result = run("tonemap", exrs / frame_name(2), "-o", tmp_path / "one.png", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "one.png").is_file()
    png = cv2.imread(str(tmp_path / "one.png"))
    assert png.shape == read_exr(exrs / frame_name(2))[0].shape
    assert 10 < png.mean() < 245
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]


def test_tonemap_a_sequence_to_one_png_name_is_refused(exrs, tmp_path):
    result = run("tonemap", exrs, "-o", tmp_path / "one.png")
    assert_one_line_error(result, "one.png: names one PNG", "holds 4 frames", "name a folder")
    assert not (tmp_path / "one.png").exists()


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/x.avi"], "x.avi: hdrvid does not write .avi files"),
    (["-o", "{tmp}/x.jpg"], "x.jpg: hdrvid does not write .jpg files"),
    (["-o", "{tmp}/x.mp4", "--format", "png"], "--format png writes PNGs"),
])
def test_tonemap_refuses_names_it_cannot_write(exrs, tmp_path, args, message):
    result = run("tonemap", exrs, *(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_tonemap_to_a_folder_name_still_writes_pngs(exrs, tmp_path):
    result = run("tonemap", exrs, "-o", tmp_path / "take.v2", "-q")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "take.v2").glob("frame_*.png"))) == 4
    assert np.all([p.stat().st_size > 0 for p in (tmp_path / "take.v2").iterdir()])


def test_a_video_file_run_interrupted_then_resumed(tmp_path):
    """Ctrl-C while converting to -o out/result.mp4: the message names the hidden folder its
    frames wait in, and --resume finishes the same file."""
    import signal

    from conftest import paced_hdrvid, wait_for_files

    from hdrvid.exposure import pattern_from_cycle
    from hdrvid.synth import procedural_scene, write_alternating_clip

    clip = tmp_path / "clip.mp4"
    write_alternating_clip(clip, procedural_scene(48, 320, 180, seed=3), pattern_from_cycle([1, 8]))
    video = tmp_path / "out" / "result.mp4"
    frames = tmp_path / "out" / ".result.mp4.hdrvid-frames"
    child = paced_hdrvid("convert", clip, "-o", video, "--format", "sdr", "-q")
    wait_for_files(frames, "frame_*.exr", 3)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and str(frames) in stderr, stderr
    assert not video.exists()
    result = run("convert", clip, "-o", video, "--format", "sdr", "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["resumed"] >= 3
    assert _frames_in(video) == 48 and not frames.exists()
