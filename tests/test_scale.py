"""--scale native|mid-grey (issue 24): one factor for the whole sequence puts its log-average
luminance at 0.18; it is recorded in the EXR headers and hdrvid.json, the renderers read the
frames back on the native scale, and --resume keeps the factor and refuses another --scale."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from hdrvid.cli import main
from hdrvid.exr import frame_name, read_exr
from hdrvid.render import content_light_levels, render
from hdrvid.source import read_source
from hdrvid.tonemap import log_average_luminance


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def mid_grey(clip2, tmp_path_factory):
    out = tmp_path_factory.mktemp("mid-grey")
    result = run("convert", clip2.path, "-o", out, "--scale", "mid-grey", "-q")
    assert result.exit_code == 0, result.output
    return out


def _frames(folder, n):
    return [read_exr(folder / frame_name(i))[0].astype(np.float32) for i in range(n)]


def test_one_factor_scales_every_frame(clip2, convert_cached, mid_grey, exr_header):
    native = _frames(convert_cached(clip2), clip2.n_frames)
    scaled = _frames(mid_grey, clip2.n_frames)
    sidecar = json.loads((mid_grey / "hdrvid.json").read_text())
    factor = sidecar["scale_factor"]
    assert abs(math.log2(factor)) > 0.5  # the clip's native log-average is not 0.18
    assert sidecar["options"]["scale"] == "mid-grey" and "0.18" in sidecar["scale"]
    for i, (a, b) in enumerate(zip(native, scaled)):
        assert exr_header(mid_grey / frame_name(i))["hdrvid:scale"] == pytest.approx(factor)
        lit = a > 1e-3
        # half floats round each value to 2^-11: the ratio is the factor, frame after frame
        np.testing.assert_allclose(b[lit] / a[lit], factor, rtol=2e-3)


def test_the_sequence_log_average_lands_on_mid_grey(clip2, mid_grey):
    pooled = np.concatenate([f.reshape(-1, 3) for f in _frames(mid_grey, clip2.n_frames)])
    assert log_average_luminance(pooled) == pytest.approx(0.18, rel=0.05)  # 8 of 16 frames


def test_renderers_read_the_frames_back_on_the_native_scale(clip2, convert_cached, mid_grey,
                                                            tmp_path):
    native = convert_cached(clip2)
    assert content_light_levels(read_source(mid_grey), 1000) == pytest.approx(
        content_light_levels(read_source(native), 1000), abs=2)  # HDR10 metadata unchanged
    for name, folder in (("native", native), ("mid", mid_grey)):
        render(folder / frame_name(3), tmp_path / f"{name}.png")  # one EXR: its header's scale
        render(folder, tmp_path / name, "png")
    import cv2

    for a, b in ((tmp_path / "native.png", tmp_path / "mid.png"),
                 (tmp_path / "native" / "frame_000005.png", tmp_path / "mid" / "frame_000005.png")):
        diff = np.abs(cv2.imread(str(a)).astype(int) - cv2.imread(str(b)).astype(int))
        assert diff.max() <= 1  # the SDR preview does not depend on --scale


def test_resume_keeps_the_recorded_factor(clip2, tmp_path, exr_header):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "-m", "reference", "--scale", "mid-grey",
               "--frames", "6", "-q").exit_code == 0
    sidecar = json.loads((out / "hdrvid.json").read_text())
    recorded = sidecar["scale_factor"] / 2  # as if the interrupted run had measured this
    (out / "hdrvid.json").write_text(json.dumps({**sidecar, "status": "interrupted",
                                                 "scale_factor": recorded}))
    (out / frame_name(4)).unlink()
    result = run("convert", clip2.path, "-o", out, "-m", "reference", "--scale", "mid-grey",
                 "--frames", "6", "--resume", "-q")
    assert result.exit_code == 0, result.output
    assert exr_header(out / frame_name(4))["hdrvid:scale"] == pytest.approx(recorded)
    assert json.loads((out / "hdrvid.json").read_text())["scale_factor"] == recorded


def test_resume_refuses_another_scale(clip2, tmp_path):
    out = tmp_path / "out"
    assert run("convert", clip2.path, "-o", out, "-m", "reference", "--frames", "4",
               "-q").exit_code == 0
    result = run("convert", clip2.path, "-o", out, "-m", "reference", "--frames", "4",
                 "--scale", "mid-grey", "--resume")
    assert_one_line_error(result, "holds frames at --scale native", "--overwrite")


def test_a_native_run_records_scale_one(clip2, convert_cached, exr_header):
    out = convert_cached(clip2)
    assert exr_header(out / frame_name(0))["hdrvid:scale"] == 1.0
    assert json.loads((out / "hdrvid.json").read_text())["scale_factor"] == 1.0


def test_eval_compares_on_the_native_scale(clip2, convert_cached, mid_grey):
    from hdrvid.evaluate import evaluate

    native = evaluate(convert_cached(clip2), mid_grey, metrics=("psnr-t",))
    assert native.mean["psnr-t"] > 60  # the same frames, but for half-float rounding
