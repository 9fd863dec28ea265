"""Converting part of a video (issue 24): --start, --frames, --duration, the audio cut to the
frames kept, timestamps that stay consistent, and --resume refusing another --start."""

import json

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FPS, VFR_PTS, assert_one_line_error
from test_outputs import _clip_with_audio

from hdrvid.cli import main
from hdrvid.errors import InputError
from hdrvid.exr import frame_name, read_exr
from hdrvid.video import Position, parse_position


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _indices(folder):
    return sorted(int(p.stem.removeprefix("frame_")) for p in folder.glob("frame_*.exr"))


@pytest.mark.parametrize("text, position", [
    ("60", Position(frames=60)), ("0", Position(frames=0)), ("2.5s", Position(seconds=2.5)),
    ("00:00:02.5", Position(seconds=2.5)), ("1:30", Position(seconds=90.0)),
    ("01:00:00", Position(seconds=3600.0)), ("0.25S", Position(seconds=0.25)),
])
def test_positions_are_frames_seconds_or_timecodes(text, position):
    assert parse_position(text) == position


@pytest.mark.parametrize("text", ["2.5", "abc", "-1s", "s", "00:61", "1:2:3:4", "-5", "nans"])
def test_an_ambiguous_or_malformed_position_is_refused(text):
    with pytest.raises(InputError, match=f"--start {text}: "):
        parse_position(text)


@pytest.mark.parametrize("args", [["--start", "2.5"], ["--duration", "x"],
                                  ["--frames", "4", "--duration", "2s"]])
def test_bad_ranges_are_usage_errors(clip2, tmp_path, args):
    result = run("convert", clip2.path, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def test_a_start_past_the_end_is_one_line(clip2, tmp_path):
    result = run("convert", clip2.path, "-o", tmp_path / "out", "--start", "16", "-m", "reference")
    assert_one_line_error(result, "--start 16 is at or past the end", "16 frames")


def test_a_part_equals_those_frames_of_the_whole_run(clip2, convert_cached, tmp_path):
    """--start 5 --frames 6 with merge: frames 5-10, each equal to the whole run's frame (the
    windows at the cut read their true neighbours), with the source's frame numbers and
    timestamps."""
    whole = convert_cached(clip2)
    out = tmp_path / "part"
    result = run("convert", clip2.path, "-o", out, "--start", "5", "--frames", "6", "-q")
    assert result.exit_code == 0, result.output
    assert _indices(out) == list(range(5, 11))
    for i in range(5, 11):
        np.testing.assert_array_equal(read_exr(out / frame_name(i))[0],
                                      read_exr(whole / frame_name(i))[0])
    ours = json.loads((out / "hdrvid.json").read_text())
    theirs = json.loads((whole / "hdrvid.json").read_text())
    assert ours["frames"] == theirs["frames"][5:11]
    assert ours["range"]["first"] == 5 and ours["range"]["last"] == 11
    assert ours["range"]["start"] == pytest.approx(5 / FPS)
    assert ours["range"]["end"] == pytest.approx(11 / FPS)


@pytest.mark.parametrize("args", [["--start", "0.25s", "--duration", "0.25s"],
                                  ["--start", "00:00:00.25", "--duration", "6"],
                                  ["--start", "6", "--frames", "6"]])
def test_times_and_frames_name_the_same_part(clip2, tmp_path, args):
    out = tmp_path / "out"
    result = run("convert", clip2.path, "-o", out, "-m", "reference", "-q", *args)
    assert result.exit_code == 0, result.output
    assert _indices(out) == list(range(6, 12))  # 0.25 s at 24 fps is frame 6


def test_times_follow_a_variable_frame_rate(vfr_clip, tmp_path):
    """At 0.13 s the VFR clip shows its frame 3 (pts 130 ms); 0.1 s more holds 130 and 170."""
    out = tmp_path / "out"
    result = run("convert", vfr_clip.path, "-o", out, "-m", "reference", "-q",
                 "--start", "0.13s", "--duration", "0.1s")
    assert result.exit_code == 0, result.output
    assert _indices(out) == [3, 4]
    frames = json.loads((out / "hdrvid.json").read_text())["frames"]
    assert [round(f["time"] * 1000) for f in frames] == VFR_PTS[3:5]


def test_a_part_past_the_end_stops_at_the_end(clip2, tmp_path):
    out = tmp_path / "out"
    result = run("convert", clip2.path, "-o", out, "-m", "reference", "-q",
                 "--start", "12", "--frames", "10")
    assert result.exit_code == 0, result.output
    assert _indices(out) == [12, 13, 14, 15]
    assert json.loads((out / "hdrvid.json").read_text())["range"]["end"] is None


# --- audio and video timestamps ----------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory):
    """2 exposures (1, 8), 24 frames at 24 fps, with a 1.5 s AAC tone (longer than the video)."""
    return _clip_with_audio(tmp_path_factory.mktemp("cut-audio"), 24, 128, 96, seed=7,
                            seconds=1.5)


def _timing(path):
    """(video frame times, [(audio packet time, duration, bytes)]) in seconds."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = sorted(float(p.pts * video.time_base) for p in container.demux(video)
                       if p.pts is not None)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        packets = [(float(p.pts * audio.time_base), float(p.duration * audio.time_base),
                    bytes(p)) for p in container.demux(audio) if p.size]
    return times, packets


def _audio_seconds(packets):
    return packets[-1][0] + packets[-1][1] - packets[0][0]


def test_frames_cut_the_audio_to_the_frames_kept(clip_with_audio, tmp_path):
    video = tmp_path / "first12.mp4"
    result = run("convert", clip_with_audio, "-o", video, "--format", "sdr", "--frames", "12",
                 "-m", "reference", "-q")
    assert result.exit_code == 0, result.output
    source_times, source_audio = _timing(clip_with_audio)
    times, audio = _timing(video)
    assert _audio_seconds(source_audio) > 1.4
    np.testing.assert_allclose(times, source_times[:12], atol=1e-3)
    packet = audio[-1][1]
    assert 0.5 <= audio[-1][0] + packet < 0.5 + packet  # 12 frames at 24 fps, to a packet
    assert [p[2] for p in audio] == [p[2] for p in source_audio[:len(audio)]]  # stream copy


def test_a_part_starts_at_zero_with_its_own_audio(clip_with_audio, tmp_path):
    """--start 0.5s --duration 0.25s: 6 frames from frame 12; the video starts at 0 and its
    audio is the source's from 0.5 s, moved to 0, as ffmpeg -ss would cut it."""
    out = tmp_path / "out"
    result = run("convert", clip_with_audio, "-o", out, "--format", "all", "--start", "0.5s",
                 "--duration", "0.25s", "-m", "reference", "-q")
    assert result.exit_code == 0, result.output
    assert _indices(out) == list(range(12, 18))
    header = read_exr(out / frame_name(12))[1]
    assert header["hdrvid:time"] == pytest.approx(0.5)  # the EXRs keep the source's clock
    source_times, source_audio = _timing(clip_with_audio)
    for name in ("clip-sdr.mp4", "clip-hdr10.mp4"):
        times, audio = _timing(out / name)
        np.testing.assert_allclose(times, np.array(source_times[12:18]) - 0.5, atol=1e-3)
        assert abs(audio[0][0]) <= audio[0][1]
        assert abs(_audio_seconds(audio) - 0.25) <= 2 * audio[0][1]
        first = next(i for i, p in enumerate(source_audio) if p[0] >= 0.5 - 1e-6)
        assert [p[2] for p in audio] == [p[2] for p in source_audio[first:first + len(audio)]]
        assert [round(p[0] - a[0] - 0.5, 3) for p, a in zip(source_audio[first:], audio)] == \
            [0.0] * len(audio)  # moved by exactly the cut


def test_tonemap_later_cuts_the_same_way(clip_with_audio, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip_with_audio, "-o", out, "--start", "6", "--frames", "6",
               "-m", "reference", "-q").exit_code == 0
    result = run("tonemap", out, "-o", tmp_path / "preview.mkv", "-q")
    assert result.exit_code == 0, result.output
    times, audio = _timing(tmp_path / "preview.mkv")
    assert times[0] == pytest.approx(0.0, abs=1e-3) and len(times) == 6
    assert abs(_audio_seconds(audio) - 0.25) <= 2 * audio[0][1]


# --- resume ------------------------------------------------------------------------------------

def test_resume_refuses_another_start(clip2, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "-m", "reference", "--start", "4",
               "--frames", "4", "-q").exit_code == 0
    refused = run("convert", clip2.path, "-o", out, "-m", "reference", "--start", "6",
                  "--frames", "4", "--resume")
    assert_one_line_error(refused, "starts at frame 4", "this one starts at frame 6", "--start")
    same = run("convert", clip2.path, "-o", out, "-m", "reference", "--start", "1/6s".replace(
        "1/6s", "00:00:00.1667"), "--frames", "4", "--resume", "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout.splitlines()[-1])["resumed"] == 4


def test_overwrite_with_another_part_removes_the_earlier_frames(clip2, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "-m", "reference", "--frames", "6",
               "-q").exit_code == 0
    assert run("convert", clip2.path, "-o", out, "-m", "reference", "--start", "8",
               "--frames", "4", "-q", "--overwrite").exit_code == 0
    assert _indices(out) == [8, 9, 10, 11]
