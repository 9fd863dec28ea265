"""Exposure patterns: parsing, sidecar files and detection from decoded video (docs/conventions.md
§2-3)."""

import math

import pytest

from hdrvid import ExposureHints, resolve_exposures
from hdrvid.errors import ExposureError
from hdrvid.exposure import (
    ExposurePattern,
    detect_exposure_pattern,
    parse_exposures,
    pattern_from_cycle,
    pattern_from_stops,
    read_exposure_file,
)
from hdrvid.response import Response
from hdrvid.video import probe, read_frames

CLIP_NAMES = ["2exp_phase0", "2exp_phase1", "3exp_phase0", "3exp_phase1", "3exp_phase2"]


# --- ExposurePattern ---------------------------------------------------------------------------

def test_pattern_levels_and_times():
    pattern = ExposurePattern((1.0, 4.0, 16.0), phase=2)
    assert [pattern.level(i) for i in range(6)] == [2, 0, 1, 2, 0, 1]
    assert [pattern.time(i) for i in range(4)] == [16.0, 1.0, 4.0, 16.0]
    assert pattern.period == 3
    assert pattern.stops == pytest.approx((0.0, 2.0, 4.0))
    assert "frame 0 is high" in pattern.describe()


@pytest.mark.parametrize("times", [(1.0,), (1.0, 2.0, 4.0, 8.0), (1.0, 1.0), (2.0, 8.0),
                                   (1.0, 8.0, 4.0)])
def test_pattern_rejects_invalid_times(times):
    with pytest.raises(ExposureError):
        ExposurePattern(times)


# --- parse_exposures / pattern_from_cycle ------------------------------------------------------

@pytest.mark.parametrize("text, times, phase", [
    ("1,8", (1.0, 8.0), 0),
    ("8,1", (1.0, 8.0), 1),
    ("2,16", (1.0, 8.0), 0),          # any scale: normalised so the shortest is 1
    ("1 8", (1.0, 8.0), 0),
    (" 1, 4 ", (1.0, 4.0), 0),
    ("1,4,16", (1.0, 4.0, 16.0), 0),
    ("4,16,1", (1.0, 4.0, 16.0), 1),  # frame 0 is mid
    ("16,1,4", (1.0, 4.0, 16.0), 2),  # frame 0 is high
    ("0.5,2,8", (1.0, 4.0, 16.0), 0),
])
def test_parse_exposures(text, times, phase):
    pattern = parse_exposures(text)
    assert pattern.times == pytest.approx(times)
    assert pattern.phase == phase
    assert pattern.source == "--exposures"
    # frame i gets the i-th value given (up to scale)
    values = [float(v) for v in text.replace(",", " ").split()]
    for i, value in enumerate(values):
        assert pattern.time(i) == pytest.approx(value / min(values))


@pytest.mark.parametrize("text", ["16,4,1", "1,16,4", "4,1,16"])
def test_descending_three_cycle_is_rejected(text):
    with pytest.raises(ExposureError, match="ascending"):
        parse_exposures(text)


@pytest.mark.parametrize("text, match", [
    ("1,1", "distinct"),
    ("1", "2 or 3"),
    ("1,2,4,8", "2 or 3"),
    ("0,8", "positive"),
    ("-1,8", "positive"),
    ("a,b", "expected numbers"),
])
def test_parse_exposures_errors(text, match):
    with pytest.raises(ExposureError, match=match):
        parse_exposures(text)


def test_pattern_from_cycle_sets_source():
    assert pattern_from_cycle([1, 8], source="x").source == "x"


# --- pattern_from_stops ------------------------------------------------------------------------

@pytest.mark.parametrize("stops, cycle, phase, times", [
    (3, 2, 0, (1.0, 8.0)),
    (2, 2, 1, (1.0, 4.0)),
    (2, 3, 0, (1.0, 4.0, 16.0)),
    (2, 3, 5, (1.0, 4.0, 16.0)),  # phase taken modulo the cycle
    (1.5, 2, 0, (1.0, 2.0**1.5)),
])
def test_pattern_from_stops(stops, cycle, phase, times):
    pattern = pattern_from_stops(stops, cycle, phase)
    assert pattern.times == pytest.approx(times)
    assert pattern.phase == phase % cycle


@pytest.mark.parametrize("stops, cycle, match", [
    (3, 4, "--cycle"), (3, 1, "--cycle"), (0, 2, "--stops"), (-1, 2, "--stops"), (9, 2, "--stops"),
])
def test_pattern_from_stops_errors(stops, cycle, match):
    with pytest.raises(ExposureError, match=match):
        pattern_from_stops(stops, cycle)


# --- read_exposure_file ------------------------------------------------------------------------

@pytest.mark.parametrize("text, times, phase", [
    ("0\n3\n", (1.0, 8.0), 0),                       # one value per level, in stops
    ("3\n0\n", (1.0, 8.0), 1),
    ("# Exposures.txt\n\n0\n2\n4\n", (1.0, 4.0, 16.0), 0),
    ("4\n0\n2\n", (1.0, 4.0, 16.0), 2),
    ("".join(f"frame_{i:04d}.png {3 * (i % 2)}\n" for i in range(10)), (1.0, 8.0), 0),  # per frame
    ("".join(f"{3 * ((i + 1) % 2)}  # frame {i}\n" for i in range(7)), (1.0, 8.0), 1),
    ("".join(f"img{i}.tif {[2, 4, 0][i % 3]}\n" for i in range(9)), (1.0, 4.0, 16.0), 1),
    ("-1\n1\n-1\n1\n", (1.0, 4.0), 0),               # stops relative to any reference
])
def test_read_exposure_file(tmp_path, text, times, phase):
    path = tmp_path / "Exposures.txt"
    path.write_text(text)
    pattern = read_exposure_file(path)
    assert pattern.times == pytest.approx(times)
    assert pattern.phase == phase
    assert pattern.source == str(path)


@pytest.mark.parametrize("text, line, value", [
    ("0\n3\n0\n3\n0\n2\n0\n2\n", 6, "2"),                       # 2-cycle changes at line 6
    ("# stops\n\n0\n3\n0\n3  # ok\n\n0\n2\n0\n", 9, "2"),       # line numbers count every line
    ("0\n2\n4\n0\n2\n4\n0\n2\n5\n", 9, "5"),                    # 3-cycle changes at line 9
])
def test_exposure_file_whose_cycle_changes_names_the_line(tmp_path, text, line, value):
    path = tmp_path / "Exposures.txt"
    path.write_text(text)
    with pytest.raises(ExposureError) as info:
        read_exposure_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: exposure {value} ")
    assert "cycle" in message


@pytest.mark.parametrize("text, match", [
    ("1\n1\n1\n1\n", "same exposure"),
    ("0\nabc\n", "'abc' is not a number"),
    ("0\n", "at least 2"),
    ("4\n2\n0\n", "ascending"),     # a descending 3-cycle, one value per level
])
def test_exposure_file_errors(tmp_path, text, match):
    path = tmp_path / "Exposures.txt"
    path.write_text(text)
    with pytest.raises(ExposureError, match=match):
        read_exposure_file(path)


def test_missing_exposure_file(tmp_path):
    with pytest.raises(ExposureError, match="cannot read"):
        read_exposure_file(tmp_path / "nope.txt")


def test_descending_exposure_file_error_names_the_file(tmp_path):
    path = tmp_path / "Exposures.txt"
    path.write_text("4\n2\n0\n")
    with pytest.raises(ExposureError, match=str(path)):
        read_exposure_file(path)


# --- detection on decoded video ----------------------------------------------------------------

@pytest.mark.parametrize("name", CLIP_NAMES)
def test_detect_exposure_pattern_on_decoded_frames(clips_by_name, name):
    clip = clips_by_name[name]
    frames = [f.rgb for f in read_frames(clip.path, max_frames=24)]
    assert len(frames) == clip.n_frames
    pattern = detect_exposure_pattern(frames)
    assert pattern.period == clip.pattern.period
    assert pattern.phase == clip.pattern.phase
    assert pattern.times == pytest.approx(clip.pattern.times, rel=1e-6)  # snapped to 1/3 stops
    assert pattern.source == "detected"
    assert 0.5 <= pattern.confidence <= 1.0
    # frame i gets the exposure it was rendered with
    for i in range(clip.n_frames):
        assert pattern.time(i) == pytest.approx(clip.cycle[i % len(clip.cycle)] / min(clip.cycle))


@pytest.mark.parametrize("cycle", [(1, 4), (4, 1), (1, 2), (1, 8, 64), (64, 1, 8)])
@pytest.mark.parametrize("bits", [8, 10])
def test_detection_of_other_ratios_and_bit_depths(tmp_path, cycle, bits):
    from hdrvid.synth import procedural_scene, write_alternating_clip

    truth = pattern_from_cycle(cycle)
    path = tmp_path / "clip.mp4"
    write_alternating_clip(path, procedural_scene(12, 256, 144, seed=7), truth, bits=bits, seed=7)
    pattern = detect_exposure_pattern([f.rgb for f in read_frames(path)])
    assert (pattern.times, pattern.phase) == (pytest.approx(truth.times), truth.phase)


def test_detection_of_a_constant_exposure_video_fails(constant_clip):
    frames = [f.rgb for f in read_frames(constant_clip)]
    with pytest.raises(ExposureError, match="--exposures"):
        detect_exposure_pattern(frames)


def test_detection_needs_four_frames(clip2):
    frames = [f.rgb for f in read_frames(clip2.path, max_frames=3)]
    with pytest.raises(ExposureError, match="--exposures"):
        detect_exposure_pattern(frames)


@pytest.mark.parametrize("name, stops", [("2exp_phase0", 3), ("2exp_phase1", 3),
                                         ("3exp_phase1", 2), ("3exp_phase2", 2)])
def test_stops_and_cycle_take_the_phase_from_the_video(clips_by_name, name, stops):
    clip = clips_by_name[name]
    hints = ExposureHints(stops=stops, cycle=clip.pattern.period)
    pattern, _ = resolve_exposures(probe(clip.path), hints, Response())
    assert pattern.times == pytest.approx(clip.pattern.times)
    assert pattern.phase == clip.pattern.phase
    assert pattern.source == "--stops"


def test_stops_without_cycle_is_an_error(clip2):
    with pytest.raises(ExposureError, match="--cycle"):
        resolve_exposures(probe(clip2.path), ExposureHints(stops=3), Response())


def test_given_exposures_matching_the_video_give_no_warning(clip2_high_first):
    pattern, warnings = resolve_exposures(probe(clip2_high_first.path),
                                          ExposureHints(exposures="8,1"), Response())
    assert (pattern.times, pattern.phase) == ((1.0, 8.0), 1)
    assert warnings == []


def test_given_exposures_in_the_wrong_order_are_refused(clip2_high_first):
    with pytest.raises(ExposureError, match="frame 0 is high.*--force-exposures"):
        resolve_exposures(probe(clip2_high_first.path), ExposureHints(exposures="1,8"),
                          Response())


def test_forced_exposures_in_the_wrong_order_are_kept_with_a_warning(clip2_high_first):
    pattern, warnings = resolve_exposures(probe(clip2_high_first.path),
                                          ExposureHints(exposures="1,8", force=True), Response())
    assert pattern.phase == 0  # the user's word is kept...
    assert len(warnings) == 1  # ...with a warning that the video says otherwise
    assert "frame 0 is high" in warnings[0]


def test_wrong_order_names_the_detected_level_for_three_exposures(clip3_high_first):
    with pytest.raises(ExposureError, match="frame 0 is high"):  # frame 0 is the t = 16 one
        resolve_exposures(probe(clip3_high_first.path), ExposureHints(exposures="4,16,1"),
                          Response())


def test_exposures_forced_on_a_video_that_does_not_alternate_are_refused(constant_clip):
    with pytest.raises(ExposureError, match="differ by .* --force-exposures"):
        resolve_exposures(probe(constant_clip), ExposureHints(exposures="1,8"), Response())


def test_ratios_a_little_off_are_not_contradicted(clip2):
    # the clip is 1, 8: a camera response can move measured steps by a stop
    _, warnings = resolve_exposures(probe(clip2.path), ExposureHints(exposures="1,4"), Response())
    assert warnings == []


def test_detected_stops_are_finite(clip3):
    pattern = detect_exposure_pattern([f.rgb for f in read_frames(clip3.path)])
    assert all(math.isfinite(s) for s in pattern.stops)
    assert pattern.stops == pytest.approx((0.0, 2.0, 4.0))


# --- strongly saturated clips ------------------------------------------------------------------

def _saturated_clip(path, cycle, clipped, frames=18, seed=11):
    """A bright clip whose longest frames have ``clipped`` of their pixels at the top (the
    procedural scene scaled so): what an over-bright 1,4,16 or 1,8 bracket records."""
    import numpy as np

    from hdrvid.synth import procedural_scene, write_alternating_clip

    scene = list(procedural_scene(frames, 256, 144, seed=seed))
    peaks = np.concatenate([f.max(axis=-1).ravel() for f in scene])
    gain = 1.0 / (max(cycle) * np.quantile(peaks, 1.0 - clipped))
    pattern = pattern_from_cycle(cycle)
    write_alternating_clip(path, (gain * f for f in scene), pattern, seed=seed)
    return pattern


def _clipped_fraction(path, pattern):
    import numpy as np

    longest = pattern.period - 1
    fractions = [float((f.rgb.max(axis=-1) >= 0.95).mean()) for f in read_frames(path)
                 if pattern.level(f.index) == longest]
    return float(np.mean(fractions))


@pytest.mark.parametrize("cycle", [(1, 8), (8, 1), (1, 4, 16), (4, 16, 1), (16, 1, 4)])
def test_detection_of_clips_whose_long_frames_are_almost_all_clipped(tmp_path, cycle):
    from click.testing import CliRunner

    from hdrvid.cli import main

    path = tmp_path / "bright.mp4"
    truth = _saturated_clip(path, cycle, clipped=0.97)
    assert _clipped_fraction(path, truth) >= 0.95
    result = CliRunner().invoke(main, ["info", "--json", str(path)])
    assert result.exit_code == 0, result.output
    import json

    exposures = json.loads(result.stdout)["exposures"]
    assert (exposures["times"], exposures["phase"]) == (pytest.approx(truth.times), truth.phase)
    assert exposures["assumed"] is None  # the few unclipped pixels measured every step


def test_a_three_exposure_clip_with_one_measurable_step_assumes_equal_steps(tmp_path):
    from click.testing import CliRunner

    from hdrvid.cli import main

    path = tmp_path / "blown.mp4"
    truth = _saturated_clip(path, (1, 4, 16), clipped=0.9995)
    frames = [f.rgb for f in read_frames(path)]
    pattern = detect_exposure_pattern(frames)
    assert (pattern.times, pattern.phase) == (pytest.approx(truth.times), truth.phase)
    assert "equal steps" in pattern.assumed
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(out), "--frames", "6",
                                       "-m", "reference", "-q"])
    assert result.exit_code == 0, result.output
    import json

    sidecar = json.loads((out / "hdrvid.json").read_text())
    assert "equal steps" in sidecar["exposures"]["assumed"]
    assert any("equal steps" in w for w in sidecar["report"]["warnings"])


def test_a_two_exposure_clip_with_nothing_measurable_fails_with_what_to_pass(tmp_path):
    path = tmp_path / "blown.mp4"
    _saturated_clip(path, (1, 8), clipped=0.9995)
    with pytest.raises(ExposureError, match="--exposures"):
        detect_exposure_pattern([f.rgb for f in read_frames(path)])


# --- real footage: a film stack and a real HDR photograph ----------------------------------------

def _info_exposures(path):
    import json

    from click.testing import CliRunner

    from hdrvid.cli import main

    result = CliRunner().invoke(main, ["info", "--json", str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["exposures"]


def _steps_within_a_third(times, truth):
    import numpy as np

    found = np.diff(np.log2(times))
    return bool(np.all(np.abs(found - np.diff(truth.stops)) <= 1 / 3 + 1e-6))


@pytest.mark.requires_shared_data
@pytest.mark.parametrize("files, cycle", [
    (["memorial0072.png", "memorial0069.png"], (1, 8)),  # 1/64 s, 1/8 s
    (["memorial0072.png", "memorial0070.png", "memorial0068.png"], (1, 4, 16)),
])
def test_detection_of_a_static_film_stack_with_shifting_borders(tmp_path, files, cycle):
    """The Memorial Church stack (film, not gamma 2.2) played as a still alternating clip: its
    registration borders (pure blue) differ from frame to frame, so the brightness quantiles
    of neighbouring frames compare different content; the co-located pixels do not."""
    import cv2
    import numpy as np
    from conftest import SHARED_DATA

    from hdrvid.encode import VideoWriter

    frames = [cv2.imread(str(SHARED_DATA / "memorial" / f))[..., ::-1] for f in files]
    path = tmp_path / "memorial.mp4"
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, crf=12) as writer:
        for i in range(8):
            writer.write(frames[i % len(frames)].astype(np.float32) / 255)
    truth = pattern_from_cycle(cycle)
    exposures = _info_exposures(path)
    assert (exposures["period"], exposures["phase"]) == (truth.period, truth.phase)
    # the film's curve moves gamma-2.2 measurements; a third of a stop is detection's step
    assert _steps_within_a_third(exposures["times"], truth), exposures["times"]


@pytest.mark.requires_shared_data
def test_a_step_measured_on_the_few_unclipped_pixels_is_taken_to_the_whole_stop(tmp_path):
    """GoldenGate at 1, 4, 16 along this camera path: its ×16 frames are almost all clipped,
    and the few dark pixels left measure the step into them short of 2 stops (docs/performance.md)."""
    from conftest import SHARED_DATA

    from hdrvid.synth import still_clip, write_alternating_clip

    truth = pattern_from_cycle((1, 4, 16))
    path = tmp_path / "bright.mp4"
    frames = still_clip(SHARED_DATA / "hdr" / "GoldenGate.exr", 12, 256, 144, seed=3)
    write_alternating_clip(path, frames, truth, seed=3)
    exposures = _info_exposures(path)
    assert (exposures["times"], exposures["phase"]) == (pytest.approx(truth.times), truth.phase)
    assert "nearest whole stop" in exposures["assumed"]
