"""`hdrvid eval` and `hdrvid.evaluate`: values computed by hand, JSON layout, pairing, errors."""

import json
import math
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from click.testing import CliRunner
from conftest import T, assert_one_line_error, requires_optional

from hdrvid import metrics
from hdrvid.cli import main
from hdrvid.evaluate import EvalProgress, LazyFrames, evaluate, parse_metrics
from hdrvid.exr import frame_name, read_exr, write_exr

SIZE = 16
C1, C2 = 0.01**2, 0.03**2
CORE = "psnr-t,psnr-l,ssim-t,temporal"


def header(**attributes) -> dict:
    """A fresh EXR header (OpenEXR.File fills in the dict it is given, so never share one)."""
    return {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **attributes}


def run(*args):
    return CliRunner().invoke(main, ["eval", *[str(a) for a in args]])


def run_json(*args) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_frames(folder: Path, values, names=None, size=(SIZE, SIZE), exposures=None) -> Path:
    """Constant RGB frames (one value each), float32, named frame_NNNNNN.exr unless given."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, value in enumerate(values):
        extra = {} if exposures is None else {"hdrvid:exposure": float(exposures[i])}
        name = names[i] if names else frame_name(i)
        write_exr(folder / name, np.full((*size, 3), value, np.float32), header(**extra))
    return folder


def write_sidecar(folder: Path, exposures, times=(1.0, 8.0), fps=24.0) -> None:
    frames = [{"index": i, "file": frame_name(i), "exposure": t} for i, t in enumerate(exposures)]
    (folder / "hdrvid.json").write_text(json.dumps(
        {"exposures": {"period": len(times), "times": list(times)}, "fps": fps,
         "status": "complete", "frames": frames}))


@pytest.fixture
def clip(tmp_path):
    """Static truth at 0.25; the prediction alternates 0.5 / 0.125 (as a bad merge might)."""
    gt = write_frames(tmp_path / "gt", [0.25] * 4)
    pred = write_frames(tmp_path / "pred", [0.5, 0.125, 0.5, 0.125])
    write_sidecar(pred, [1.0, 8.0, 1.0, 8.0])
    return pred, gt


# --- values ------------------------------------------------------------------------------------

def test_values_by_hand(clip):
    data = run_json(*clip, "--metrics", CORE)
    psnr_t_high = -20 * math.log10(T(0.5) - T(0.25))     # frames 0, 2
    psnr_t_low = -20 * math.log10(T(0.25) - T(0.125))    # frames 1, 3
    psnr_l_high = 10 * math.log10(1 / 0.25**2)            # |0.5 - 0.25|
    psnr_l_low = 10 * math.log10(1 / 0.125**2)            # |0.125 - 0.25|
    ssim_high = (2 * T(0.5) * T(0.25) + C1) / (T(0.5) ** 2 + T(0.25) ** 2 + C1)
    ssim_low = (2 * T(0.125) * T(0.25) + C1) / (T(0.125) ** 2 + T(0.25) ** 2 + C1)
    jump = T(0.5) - T(0.125)  # each step the prediction jumps by this; the truth is static

    frames = data["frames"]
    assert [f["psnr-t"] for f in frames] == pytest.approx([psnr_t_high, psnr_t_low] * 2, rel=1e-6)
    assert [f["psnr-l"] for f in frames] == pytest.approx([psnr_l_high, psnr_l_low] * 2, rel=1e-6)
    assert [f["ssim-t"] for f in frames] == pytest.approx([ssim_high, ssim_low] * 2, rel=1e-6)
    assert frames[0]["temporal"] is None
    assert [f["temporal"] for f in frames[1:]] == pytest.approx([jump] * 3, rel=1e-6)

    mean = data["mean"]
    assert mean["psnr-t"] == pytest.approx((psnr_t_high + psnr_t_low) / 2, rel=1e-6)
    assert mean["psnr-l"] == pytest.approx((psnr_l_high + psnr_l_low) / 2, rel=1e-6)
    assert mean["ssim-t"] == pytest.approx((ssim_high + ssim_low) / 2, rel=1e-6)
    assert mean["temporal"] == pytest.approx(jump, rel=1e-6)


def test_means_per_reference_exposure(clip):
    data = run_json(*clip, "--metrics", "psnr-t,temporal")
    low, high = data["by_exposure"]["low"], data["by_exposure"]["high"]
    assert list(data["by_exposure"]) == ["low", "high"]
    assert (low["exposure"], low["frames"], high["exposure"], high["frames"]) == (1.0, 2, 8.0, 2)
    assert low["psnr-t"] == pytest.approx(-20 * math.log10(T(0.5) - T(0.25)), rel=1e-6)
    assert high["psnr-t"] == pytest.approx(-20 * math.log10(T(0.25) - T(0.125)), rel=1e-6)
    assert low["temporal"] == pytest.approx(T(0.5) - T(0.125), rel=1e-6)  # frame 2 only
    assert [f["level"] for f in data["frames"]] == ["low", "high", "low", "high"]
    assert [f["exposure"] for f in data["frames"]] == [1.0, 8.0, 1.0, 8.0]


def test_exposures_from_exr_headers_without_sidecar(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 3)
    pred = write_frames(tmp_path / "pred", [0.25] * 3, exposures=[8, 1, 8])
    data = run_json(pred, gt, "--metrics", "psnr-t")
    assert {k: v["frames"] for k, v in data["by_exposure"].items()} == {"low": 1, "high": 2}


def test_unreadable_sidecar_falls_back_to_exr_headers(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 2)
    pred = write_frames(tmp_path / "pred", [0.25] * 2, exposures=[1, 8])
    (pred / "hdrvid.json").write_text("{not json")
    data = run_json(pred, gt, "--metrics", "psnr-t")
    assert list(data["by_exposure"]) == ["low", "high"]
    assert "hdrvid.json: unreadable" in data["notes"][0]


def test_identical_sequences(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.0, 0.3, 2.0])
    data = run_json(gt, gt, "--metrics", CORE)
    assert data["mean"] == {"psnr-t": "inf", "psnr-l": "inf", "ssim-t": 1.0, "temporal": 0.0}
    assert data["by_exposure"] == {}  # no exposures recorded


def test_json_layout(clip):
    data = run_json(*clip, "--metrics", CORE)
    assert {"pred", "gt", "pairing", "frame_count", "metrics", "mean", "by_exposure", "frames",
            "unavailable", "notes", "fps", "definitions"} <= set(data)
    assert data["pairing"] == "name" and data["frame_count"] == 4
    assert data["metrics"] == CORE.split(",")
    assert set(data["definitions"]) == set(CORE.split(","))
    assert "mu=5000" in data["definitions"]["psnr-t"]
    assert set(data["frames"][0]) == {"index", "pred", "gt", "exposure", "level", *CORE.split(",")}
    assert data["frames"][3]["pred"] == frame_name(3)


def test_table(clip):
    result = run(*clip, "--metrics", CORE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "4 frame pair(s), paired by name" in out
    expected = (-20 * math.log10(T(0.5) - T(0.25)) - 20 * math.log10(T(0.25) - T(0.125))) / 2
    for text in ("PSNR-T (dB)", f"{expected:.2f}", "SSIM-T", "Temporal error", "low t=1",
                 "high t=8"):
        assert text in out
    assert frame_name(0) not in out  # no per-frame table unless asked
    per_frame = run(*clip, "--metrics", CORE, "--per-frame")
    assert frame_name(3) in per_frame.stdout and "8 high" in per_frame.stdout


def test_single_files(tmp_path):
    write_frames(tmp_path, [0.5, 0.25], names=["pred.exr", "gt.exr"])
    data = run_json(tmp_path / "pred.exr", tmp_path / "gt.exr", "--metrics", "psnr-t,temporal")
    assert data["pairing"] == "file" and data["frame_count"] == 1
    assert data["mean"]["psnr-t"] == pytest.approx(-20 * math.log10(T(0.5) - T(0.25)), rel=1e-6)
    assert data["mean"]["temporal"] is None


def test_half_float_frames(tmp_path):
    for name, value in (("pred", 0.5), ("gt", 0.25)):
        (tmp_path / name).mkdir()
        write_exr(tmp_path / name / frame_name(0), np.full((SIZE, SIZE, 3), value, np.float16),
                  header())
    data = run_json(tmp_path / "pred", tmp_path / "gt", "--metrics", "psnr-t")
    assert data["mean"]["psnr-t"] == pytest.approx(-20 * math.log10(T(0.5) - T(0.25)), rel=1e-6)


# --- pairing -----------------------------------------------------------------------------------

def test_other_names_are_paired_in_natural_order(tmp_path):
    names = ["img_2.exr", "img_10.exr", "img_1.exr"]
    gt = write_frames(tmp_path / "gt", [0.1, 0.2, 0.3], names=["a1.exr", "a2.exr", "a10.exr"])
    pred = write_frames(tmp_path / "pred", [0.2, 0.3, 0.1], names=names)
    data = run_json(pred, gt, "--metrics", "psnr-t")
    assert data["pairing"] == "order"
    assert [(f["pred"], f["gt"]) for f in data["frames"]] == [
        ("img_1.exr", "a1.exr"), ("img_2.exr", "a2.exr"), ("img_10.exr", "a10.exr")]
    assert data["mean"]["psnr-t"] == "inf"  # 0.1/0.1, 0.2/0.2, 0.3/0.3


def test_hdrvid_frames_win_over_other_exr_files(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 2)
    pred = write_frames(tmp_path / "pred", [0.25] * 2)
    write_frames(tmp_path / "pred", [9.0], names=["preview.exr"])
    assert run_json(pred, gt, "--metrics", "psnr-t")["frame_count"] == 2


def test_different_frame_names(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 2, names=[frame_name(1), frame_name(2)])
    pred = write_frames(tmp_path / "pred", [0.25] * 2)
    assert_one_line_error(run(pred, gt), pred / frame_name(0), "has no frame frame_000000.exr")


# --- errors ------------------------------------------------------------------------------------

def test_missing_folder(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25])
    assert_one_line_error(run(tmp_path / "nope", gt), tmp_path / "nope", "no such file or folder")


def test_folder_without_exr_files(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert_one_line_error(run(tmp_path / "empty", gt), tmp_path / "empty", "no EXR files")


def test_different_frame_counts(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 3)
    pred = write_frames(tmp_path / "pred", [0.25] * 2)
    assert_one_line_error(run(pred, gt), f"{pred} has 2 EXR frames but {gt} has 3")


def test_different_sizes(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 2)
    pred = write_frames(tmp_path / "pred", [0.25] * 2, size=(SIZE, SIZE + 4))
    assert_one_line_error(run(pred, gt), pred / frame_name(0), "20×16 pixels",
                          gt / frame_name(0), "16×16")


def test_corrupt_exr(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25] * 2)
    pred = write_frames(tmp_path / "pred", [0.25] * 2)
    data = (pred / frame_name(1)).read_bytes()
    (pred / frame_name(1)).write_bytes(data[: len(data) // 2])
    assert_one_line_error(run(pred, gt), pred / frame_name(1), "cannot read the EXR file")
    (gt / frame_name(0)).write_bytes(b"not an exr")
    assert_one_line_error(run(pred, gt), gt / frame_name(0), "cannot read the EXR file")


def test_file_against_folder(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25])
    assert_one_line_error(run(gt / frame_name(0), gt), "is a file but", "is a folder")


def test_frames_too_small_for_ssim(tmp_path):
    gt = write_frames(tmp_path / "gt", [0.25], size=(8, 8))
    assert_one_line_error(run(gt, gt, "--metrics", "ssim-t"), "8×8 pixels", "leave ssim-t out")
    assert run_json(gt, gt, "--metrics", "psnr-t")["mean"]["psnr-t"] == "inf"


def test_unknown_metric_is_a_usage_error(tmp_path):
    result = run(tmp_path, tmp_path, "--metrics", "psnr-t,lpips")
    assert result.exit_code == 2
    assert "unknown metric lpips" in result.stderr


def test_parse_metrics():
    assert parse_metrics(" PSNR-T, ssim-t,psnr-t ") == ("psnr-t", "ssim-t")


# --- optional metrics --------------------------------------------------------------------------

def pretend_missing(monkeypatch):
    def missing(name):
        return f"{metrics.OPTIONAL_MODULES[name]} cannot be imported (test)"
    monkeypatch.setattr(metrics, "missing_optional", missing)


def test_default_metrics_skip_missing_optional_packages(clip, monkeypatch):
    pretend_missing(monkeypatch)
    data = run_json(*clip)
    assert data["metrics"] == CORE.split(",")
    assert set(data["unavailable"]) == {"pu21", "flip", "cvvdp"}
    assert "hdrvid[metrics]" in data["unavailable"]["flip"]
    table = run(*clip)
    assert table.exit_code == 0, table.output
    # one line for the optional metrics skipped by default, not one per metric
    lines = [line for line in table.stdout.splitlines() if "not computed" in line]
    assert len(lines) == 1 and all(m in lines[0] for m in ("pu21", "flip", "cvvdp"))
    assert "pip install 'hdrvid[metrics]'" in lines[0]


def test_requested_optional_metric_that_is_missing(clip, monkeypatch):
    pretend_missing(monkeypatch)
    assert_one_line_error(run(*clip, "--metrics", "psnr-t,flip"), "metric flip is not available",
                          "hdrvid[metrics]")


def test_flip_through_eval(tmp_path):
    requires_optional("flip")
    gt = write_frames(tmp_path / "gt", [0.25, 0.0, 0.25])
    pred = write_frames(tmp_path / "pred", [0.25, 0.1, 0.5])
    data = run_json(pred, gt, "--metrics", "flip")
    values = [f["flip"] for f in data["frames"]]
    assert values[0] == 0.0 and values[1] is None and values[2] > 0  # frame 1: black reference
    assert data["mean"]["flip"] == pytest.approx(values[2] / 2)
    assert any("flip: undefined for 1 frame(s)" in note for note in data["notes"])


def test_cvvdp_through_eval(clip):
    requires_optional("cvvdp")
    data = run_json(*clip, "--metrics", "cvvdp,psnr-t", "--device", "cpu")
    assert data["fps"] == 24.0  # from hdrvid.json
    assert data["mean"]["cvvdp"] < 9  # JOD can fall below 0 for strong flicker
    assert "cvvdp" not in data["frames"][0]
    same = run_json(clip[1], clip[1], "--metrics", "cvvdp", "--device", "cpu")
    assert same["mean"]["cvvdp"] == pytest.approx(10.0, abs=1e-3)
    assert same["fps"] == 30.0 and "assumed 30 fps" in same["notes"][0]


# --- library -----------------------------------------------------------------------------------

def test_evaluate_reports_progress(clip):
    events = []
    result = evaluate(*clip, metrics=["psnr-t"], progress=events.append)
    assert events == [EvalProgress("frames", i, 4) for i in range(1, 5)]
    assert result.mean["psnr-t"] == pytest.approx(result.as_dict()["mean"]["psnr-t"])


def test_lazy_frames_read_on_demand(clip, monkeypatch):
    calls = []
    monkeypatch.setattr("hdrvid.evaluate.read_exr", lambda p: (calls.append(p), read_exr(p))[1])
    frames = LazyFrames(sorted(clip[1].glob("*.exr")))
    assert len(frames) == 4 and calls == []
    assert frames[2].shape == (SIZE, SIZE, 3) and len(calls) == 1


def test_help():
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    for text in ("PRED", "GT", "--metrics", "--json", "--per-frame", "psnr-t"):
        assert text in result.stdout
    assert "eval" in CliRunner().invoke(main, ["--help"]).stdout
