"""Camera responses: the SlopeCurve model, `--input-transfer auto`, `hdrvid calibrate` (video and
still stack) and `hdrvid info`'s curve, on clips rendered through known non-gamma curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FPS, HEIGHT, SHARED_DATA, WIDTH

from hdrvid import ConvertOptions, convert
from hdrvid.calibrate import (
    FLOOR_DEPTH,
    FLOOR_REFERENCE,
    CalibrationError,
    black_floor,
    estimate_from_video,
    fit_curve,
    resolve_auto,
)
from hdrvid.cli import main
from hdrvid.encode import VideoWriter
from hdrvid.errors import InputError
from hdrvid.exposure import pattern_from_cycle
from hdrvid.exr import frame_name, read_exr
from hdrvid.metrics import psnr_t
from hdrvid.response import SlopeCurve, linearize_gamma22, load_response
from hdrvid.stills import calibrate_stack, read_stack_exposures
from hdrvid.synth import procedural_scene
from hdrvid.video import probe

K = 0.18**0.6


def film(x: np.ndarray) -> np.ndarray:
    """A film-like sigmoid: lifted shadows, rolled-off highlights (issue 26's curve)."""
    return x**0.6 / (x**0.6 + K) * (1 + K)


def film_inverse(v: np.ndarray) -> np.ndarray:
    return (K * v / (1 + K - v)) ** (1 / 0.6)


def render(path: Path, cycle, encode, n: int = 12, seed: int = 1) -> list[np.ndarray]:
    """The procedural scene exposed with ``cycle`` (noise, clipping), encoded with ``encode``."""
    pattern = pattern_from_cycle(cycle)
    rng = np.random.default_rng(seed)
    truth = []
    with VideoWriter(path, WIDTH, HEIGHT, fps=FPS, crf=12) as writer:
        for i, hdr in enumerate(procedural_scene(n, WIDTH, HEIGHT, seed=seed)):
            x = np.clip(hdr * pattern.time(i), 0, 1)
            x = np.clip(x + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(2e-4 * x + 2e-6),
                        0, 1)
            writer.write(encode(x).astype(np.float32))
            truth.append(hdr)
    return truth


@pytest.fixture(scope="module")
def film_clip(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("response") / "film.mp4"
    return path, render(path, (1, 8), film)


@pytest.fixture(scope="module")
def gamma_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("response") / "gamma.mp4"
    render(path, (1, 4, 16), lambda x: x ** (1 / 2.2))
    return path


# what the estimates reach on these small clips (docs/response.md): the shape is closer, most of
# the error is the scale the curve's extrapolation to f(1) = 1 sets
TOLERANCE_STOPS = 0.3


def stops_apart(curve: SlopeCurve, inverse) -> float:
    v = np.linspace(0.1, 0.9, 81)
    return float(np.max(np.abs(curve.log_linear(v) - np.log(inverse(v)))) / math.log(2))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- the model ---------------------------------------------------------------------------------

def test_slope_curve_of_a_constant_slope_is_that_power():
    v = np.linspace(0, 1, 101, dtype=np.float32)
    response = load_response("slope:2.2")
    assert np.allclose(response.linearize(v), linearize_gamma22(v), atol=1e-4)
    assert SlopeCurve((1.0, 0.5)).linear(np.array([1.0]))[0] == pytest.approx(1.0)


def test_slope_spec_that_is_not_increasing_is_refused():
    with pytest.raises(InputError, match="not increasing"):
        load_response("slope:2.2,-4")
    with pytest.raises(InputError, match="slope:C0"):
        load_response("slope:2.2,x")


def test_black_floor_spec_round_trips_and_maps_the_floor_to_black():
    curve = load_response("slope:2.2;black=0.05")
    codes = np.array([0.0, 0.05, 0.525, 1.0], dtype=np.float32)
    assert np.allclose(curve.linearize(codes), [0.0, 0.0, 0.5**2.2, 1.0], atol=1e-4)
    assert SlopeCurve((2.2,), 0.05).spec == "slope:2.2;black=0.05"
    assert SlopeCurve((2.2,)).spec == "slope:2.2"  # no floor: the spec is unchanged
    with pytest.raises(InputError, match="black floor"):
        load_response("slope:2.2;black=0.7")


def _floor_pair(pedestal: float, dark: float) -> tuple[np.ndarray, np.ndarray, float]:
    """A gamma-2.2 pair (ratio 8) of a ramp with a tenth of the frame at ``dark`` linear light,
    encoded on a ``pedestal``."""
    x = np.tile(np.linspace(0.001, 0.1, 64, dtype=np.float32)[None, :, None], (48, 1, 3))
    x[:5] = dark
    encode = lambda x: pedestal + (1 - pedestal) * np.clip(x, 0, 1) ** (1 / 2.2)
    return encode(x), encode(8 * x), math.log(8)


def test_a_pedestal_is_found_as_a_black_floor_and_dark_scenery_is_not():
    assert black_floor([_floor_pair(0.06, 0.0)]) == pytest.approx(0.06, abs=0.002)
    assert black_floor([_floor_pair(0.0, 0.0)]) == 0.0  # true black at code 0: no floor
    # the darkest scenery brightens with the exposure: it is no floor
    assert black_floor([_floor_pair(0.0, 0.005)]) == 0.0
    short, _, ratio = _floor_pair(0.06, 0.0)
    assert black_floor([(short, short, ratio)]) == 0.0  # frames that do not differ


def test_auto_on_footage_with_a_pedestal_puts_the_curve_on_its_floor(tmp_path):
    def encode(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[:, :24] = 0  # a black card: the footage's darkest pixels show the pedestal
        return 0.06 + 0.94 * x ** (1 / 2.2)

    path = tmp_path / "pedestal.mp4"
    render(path, (1, 8), encode, n=6)
    warnings: list[str] = []
    spec, estimate = resolve_auto(probe(path), pattern_from_cycle((1, 8)), warnings)
    # the floor (code 0.06) is put FLOOR_DEPTH stops below code 2.5 × 0.06 on the curve
    assert 0 < estimate.curve.black < 0.06, estimate.as_dict()
    f = estimate.curve.linear(np.array([0.06, FLOOR_REFERENCE * 0.06]))
    assert math.log2(f[1] / f[0]) == pytest.approx(FLOOR_DEPTH, abs=0.3)
    assert spec.endswith(f";black={estimate.curve.black:.4g}")
    assert any("black floor" in w for w in warnings) and not estimate.looks_like_gamma22()
    below = np.float32([estimate.curve.black * 0.9])
    assert load_response(spec).linearize(below)[0] == 0.0  # the spec carries the floor
    result = run("info", path, "--exposures", "1,8", "--input-transfer", "auto")
    words = " ".join(result.output.split())  # rich wraps the table's lines
    assert result.exit_code == 0 and "black floor: codes up to" in words, result.output


def test_auto_outside_convert_is_an_error_not_a_silent_gamma():
    with pytest.raises(InputError, match="auto"):
        load_response("auto")


# --- estimation from video ---------------------------------------------------------------------

def test_film_curve_is_recovered_from_an_alternating_clip(film_clip):
    path, _ = film_clip
    estimate = estimate_from_video(probe(path), pattern_from_cycle((1, 8)))
    assert stops_apart(estimate.curve, film_inverse) < TOLERANCE_STOPS
    assert not estimate.looks_like_gamma22()
    assert estimate.residual_stops < 0.1 and estimate.confidence > 0.7


def test_gamma_clip_is_recognised_as_gamma_and_auto_keeps_gamma(gamma_clip):
    estimate = estimate_from_video(probe(gamma_clip), pattern_from_cycle((1, 4, 16)))
    assert estimate.looks_like_gamma22(), estimate.as_dict()
    warnings: list[str] = []
    spec, kept = resolve_auto(probe(gamma_clip), pattern_from_cycle((1, 4, 16)), warnings)
    assert spec == "gamma2.2" and kept.kept_gamma and kept.curve.coefficients == (2.2,)
    assert warnings == [] and kept.as_dict()["kept_gamma22"] is True


def test_convert_auto_beats_gamma_on_film_footage_and_records_the_curve(film_clip, tmp_path):
    path, truth = film_clip
    scores = {}
    for transfer in ("gamma2.2", "auto"):
        out = tmp_path / transfer
        report = convert(path, out, ConvertOptions(exposures="1,8", input_transfer=transfer))
        scores[transfer] = np.mean([psnr_t(read_exr(out / frame_name(i))[0], truth[i])
                                    for i in range(len(truth))])
    sidecar = json.loads((tmp_path / "auto" / "hdrvid.json").read_text())
    assert sidecar["options"]["input_transfer"].startswith("slope:")
    assert sidecar["response"]["samples"] and sidecar["response"]["residual_stops"] < 0.1
    assert report.response == sidecar["response"]
    assert scores["auto"] > scores["gamma2.2"] + 5, scores


def test_calibrate_video_writes_a_table_convert_reads(film_clip, tmp_path):
    path, _ = film_clip
    table = tmp_path / "response.txt"
    result = run("calibrate", path, "-o", table, "--exposures", "1,8")
    assert result.exit_code == 0, result.output
    response = load_response(str(table))
    v = np.linspace(0.1, 0.9, 9, dtype=np.float32)
    assert np.max(np.abs(np.log2(response.linearize(v) / film_inverse(v)))) < TOLERANCE_STOPS
    again = run("calibrate", path, "-o", table, "--exposures", "1,8")
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_info_says_film_footage_is_not_gamma(film_clip):
    path, _ = film_clip
    result = run("info", path, "--exposures", "1,8", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["response"]["gamma22_difference_stops"] > 0.5
    assert any("does not look like gamma 2.2" in w for w in data["warnings"])
    text = run("info", path, "--exposures", "1,8").stdout
    assert "response" in text and "residual" in text


# --- bad input ---------------------------------------------------------------------------------

def test_single_exposure_video_is_an_error_for_calibrate(constant_clip, tmp_path):
    # exposures given for a video that does not alternate: refused before or by the estimate
    result = run("calibrate", constant_clip, "-o", tmp_path / "r.txt", "--exposures", "1,8")
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r.txt").exists()
    with pytest.raises(CalibrationError, match="look the same"):
        estimate_from_video(probe(constant_clip), pattern_from_cycle((1, 8)))


def test_auto_on_a_single_exposure_video_falls_back_to_gamma_with_a_warning(constant_clip):
    warnings: list[str] = []
    spec, estimate = resolve_auto(probe(constant_clip), pattern_from_cycle((1, 8)), warnings)
    assert (spec, estimate) == ("gamma2.2", None)
    assert len(warnings) == 1 and "look the same" in warnings[0]
    assert "assuming gamma 2.2" in warnings[0]


def test_flat_scene_has_too_few_usable_pixels(tmp_path):
    path = tmp_path / "flat.mp4"
    pattern = pattern_from_cycle((1, 8))
    with VideoWriter(path, WIDTH, HEIGHT, fps=FPS, crf=12) as writer:
        for i in range(8):  # one grey level: a single comparagram point per pair
            writer.write(np.full((HEIGHT, WIDTH, 3), 0.03 * pattern.time(i) ** (1 / 2.2),
                                 np.float32))
    with pytest.raises(CalibrationError, match="too few|span only"):
        estimate_from_video(probe(path), pattern)


def test_film_scale_is_kept_where_the_data_stops_below_the_top():
    # exact film ratio equations (2E, 1:8) that end at code 0.9, as clipping leaves them: the
    # curve between there and f(1) = 1 is extrapolated, and film's slope keeps steepening there
    short = np.linspace(0.15, 0.9, 200)
    long = film(film_inverse(short) * 8)
    keep = long < 0.9
    estimate = fit_curve(short[keep], long[keep], np.full(keep.sum(), math.log(8)),
                         np.full(keep.sum(), 1000.0))
    assert stops_apart(estimate.curve, film_inverse) < 0.1, estimate.curve.spec


def test_a_curve_that_comes_out_decreasing_is_refused():
    # equations from a curve that rises then falls: the best fit is not monotone
    bent = SlopeCurve((2.2, 0.0, -12.0))
    short = np.linspace(0.1, 0.5, 60)
    long = np.clip(short * 1.6, 0, 0.94)
    ratio = bent.log_linear(long) - bent.log_linear(short)
    keep = ratio > 0
    with pytest.raises(CalibrationError, match="not increasing"):
        fit_curve(short[keep], long[keep], np.abs(bent.log_linear(long) -
                                                  bent.log_linear(short))[keep] + 0.7,
                  np.full(keep.sum(), 1000.0))


# --- still stacks ------------------------------------------------------------------------------

def test_still_stack_calibration_recovers_the_film_curve(tmp_path):
    hdr = next(procedural_scene(1, WIDTH, HEIGHT, seed=3))
    lines = []
    for i, seconds in enumerate((1 / 64, 1 / 16, 1 / 4, 1, 4)):
        v = film(np.clip(hdr * seconds * 8, 0, 1))
        name = f"img{i}.png"
        cv2.imwrite(str(tmp_path / name), np.round(v[..., ::-1] * 255).astype(np.uint8))
        lines.append(f"{name} {'1/' + str(round(1 / seconds)) if seconds < 1 else seconds}")
    (tmp_path / "exposures.txt").write_text("# image seconds\n" + "\n".join(lines) + "\n")
    estimate = calibrate_stack(tmp_path)
    assert stops_apart(estimate.curve, film_inverse) < TOLERANCE_STOPS


def test_stack_exposures_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "exposures.txt"
    bad.write_text("a.png 1/64\nb.png fast\n")
    with pytest.raises(InputError, match=r"exposures.txt:2: expected 'IMAGE SECONDS'"):
        read_stack_exposures(bad)
    bad.write_text("a.png 1\nb.png 1\n")
    with pytest.raises(InputError, match="different exposure times"):
        read_stack_exposures(bad)


@pytest.mark.requires_shared_data
def test_memorial_stack_is_not_gamma():
    estimate = calibrate_stack(SHARED_DATA / "memorial")
    assert estimate.curve.is_monotone() and not estimate.looks_like_gamma22()
