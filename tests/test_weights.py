"""Weights: shipped files (weights/, an offline Hugging Face cache), sha256 checks, importing
official checkpoints, and `hdrvid train` (tiny runs that resume)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SHARED_DATA, assert_one_line_error, randomized, save_official

from hdrvid import weights as weights_module
from hdrvid.cli import main
from hdrvid.errors import WeightsError
from hdrvid.exr import read_exr
from hdrvid.models.hdrflow import HDRFlow
from hdrvid.models.lan_hdr import LanHdr
from hdrvid.predictor import HdrPredictor
from hdrvid.registry import MODELS, shipped_files
from hdrvid.weights import WeightFile, read_safetensors, save_safetensors, sha256sum

REPO, REVISION = "hdrvid/test-weights", "v1"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """hdrflow 2-exposure 'shipped' as a random safetensors file known to the registry; returns
    (file, WeightFile). weights/ points at an empty folder until a test puts the file there."""
    path = tmp_path / "hdrflow-2e.safetensors"
    save_safetensors(randomized(HDRFlow(2), seed=3), path, {"model": "hdrflow", "period": 2})
    entry = WeightFile(path.name, sha256sum(path), path.stat().st_size, REPO, REVISION)
    spec = dataclasses.replace(MODELS["hdrflow"], weights={2: (entry,)})
    monkeypatch.setitem(MODELS, "hdrflow", spec)
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path / "weights")
    (tmp_path / "weights").mkdir()
    return path, entry


def fill_hub_cache(cache, path, monkeypatch):
    """A Hugging Face cache holding ``path`` at REVISION, and the hub offline."""
    import huggingface_hub.constants as hf

    snapshot = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / path.name).write_bytes(path.read_bytes())
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / REVISION).write_text("0" * 40)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)


def test_shipped_weights_are_used_by_default_from_weights_dir(shipped):
    path, entry = shipped
    (weights_module.WEIGHTS_DIR / path.name).write_bytes(path.read_bytes())
    predictor = HdrPredictor("hdrflow", 2, "cpu", precision="fp32")
    expected = randomized(HDRFlow(2), seed=3).eval()
    ldr, times = torch.rand(1, 3, 3, 32, 48), torch.tensor([[1.0, 8.0, 1.0]])
    with torch.no_grad():  # the same network (its BatchNorms folded into the convolutions)
        torch.testing.assert_close(predictor.predict_torch(ldr, times),
                                   MODELS["hdrflow"].forward(expected, ldr, times),
                                   rtol=1e-4, atol=1e-6)
    rows = json.loads(run("weights", "list", "--json").stdout)
    assert [(r["model"], r["where"], r["sha256"]) for r in rows
            if r["source"] == "hdrvid" and r["model"] == "hdrflow"] == [
        ("hdrflow", "bundled", entry.sha256)]


def test_a_damaged_shipped_file_is_refused(shipped, clip2, tmp_path):
    path, _ = shipped
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF
    (weights_module.WEIGHTS_DIR / path.name).write_bytes(bytes(damaged))
    with pytest.raises(WeightsError, match="is not the shipped .*delete it and fetch it again"):
        HdrPredictor("hdrflow", 2, "cpu")
    result = run("convert", clip2.path, "-o", tmp_path / "out", "-m", "hdrflow")
    assert_one_line_error(result, "hdrflow-2e.safetensors: sha256", "delete it and fetch it again")
    assert not list((tmp_path / "out").glob("*.exr"))


def test_a_truncated_weights_file_is_a_one_line_error(clip2, tmp_path):
    ckpt = save_official(HDRFlow(2).state_dict(), tmp_path / "checkpoint.pth", key="state_dict")
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    result = run("convert", clip2.path, "-o", tmp_path / "out", "-m", "hdrflow", "--weights", ckpt)
    assert_one_line_error(result, "checkpoint.pth: not a readable PyTorch checkpoint",
                          "check the download")


def _listed(filename: str) -> dict:
    """The `weights list --json` entry of a file."""
    entries = json.loads(run("weights", "list", "--json").stdout)
    return next(entry for entry in entries if entry["file"] == filename)


def test_weights_come_from_an_offline_hub_cache(shipped, tmp_path, monkeypatch):
    path, _ = shipped
    fill_hub_cache(tmp_path / "hub", path, monkeypatch)
    assert _listed(path.name)["where"] == "cached"
    result = run("weights", "pull", "hdrflow", "--source", "hdrvid")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(path.name)
    HdrPredictor("hdrflow", 2, "cpu")  # resolves to the cache


def test_offline_without_the_file_says_how_to_get_it(shipped, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    assert _listed("hdrflow-2e.safetensors")["where"] == "remote"
    result = run("weights", "pull", "hdrflow", "--source", "hdrvid")
    assert_one_line_error(result, "hdrflow-2e.safetensors could not be fetched",
                          f"https://huggingface.co/{REPO}/resolve/{REVISION}/hdrflow-2e.safetensors",
                          "pass --weights PATH")


@pytest.mark.parametrize("period", [2, 3])
def test_import_lan_hdr_finds_the_exposure_count(tmp_path, period):
    net = randomized(LanHdr(2 * period + 1), seed=period)
    ckpt = save_official(net.state_dict(), tmp_path / "ckpt.pt", key="g", iter=1)
    out = tmp_path / "lan.safetensors"
    result = run("weights", "import", ckpt, "--model", "lan-hdr", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"(lan-hdr, {period} exposures)" in result.stdout
    loaded = HdrPredictor("lan-hdr", period, "cpu", weights=out, precision="fp32").model
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())


def test_import_keeps_the_official_behaviour_of_hdrflow(tmp_path):
    net = randomized(HDRFlow(2), seed=5)
    ckpt = save_official(net.state_dict(), tmp_path / "checkpoint.pth", key="state_dict",
                         prefix="module.")
    out = tmp_path / "hdrflow.safetensors"
    assert run("weights", "import", ckpt, "-m", "hdrflow", "-o", out).exit_code == 0
    official = HdrPredictor("hdrflow", 2, "cpu", weights=ckpt, precision="fp32")
    imported = HdrPredictor("hdrflow", 2, "cpu", weights=out, precision="fp32")
    assert official.model.official_warp and imported.model.official_warp
    ldr, times = torch.rand(1, 3, 3, 32, 48), torch.tensor([[8.0, 1.0, 8.0]])
    assert torch.equal(official.predict_torch(ldr, times), imported.predict_torch(ldr, times))


def test_import_of_the_wrong_file_is_a_one_line_error(tmp_path):
    ckpt = save_official(LanHdr(5).state_dict(), tmp_path / "ckpt.pt", key="g")
    result = run("weights", "import", ckpt, "-m", "hdrflow", "-o", tmp_path / "x.safetensors")
    assert_one_line_error(result, "ckpt.pt", "no 'state_dict' entry")
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.requires_shared_data
def test_train_runs_validates_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    common = ["train", run_dir, "-m", "hdrflow", "--batch-size", "2", "--crop", "32",
              "--val-every", "2", "--workers", "0", "--device", "cpu", "--json",
              "--data", SHARED_DATA]
    first = run(*common, "--steps", "2")
    assert first.exit_code == 0, first.output
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert records[0]["step"] == 2 and records[0]["merge_psnr_t"] > 20
    assert (run_dir / "best.safetensors").is_file() and (run_dir / "last.pt").is_file()
    again = run(*common, "--steps", "2")
    assert_one_line_error(again, "holds an earlier run; pass --resume")
    resumed = run(*common, "--steps", "4", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(line)["step"] for line in resumed.stdout.splitlines()][-1] == 4
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    HdrPredictor("hdrflow", 2, "cpu", weights=run_dir / "best.safetensors")


@pytest.mark.parametrize("model, period, entry", shipped_files(),
                         ids=lambda v: v.filename if isinstance(v, WeightFile) else str(v))
def test_every_registered_file_is_bundled_intact(model, period, entry):
    """What the registry names is committed in weights/: its size and sha256, metadata for this
    model and exposure count, and a state dict that loads strictly."""
    path = weights_module.WEIGHTS_DIR / entry.filename
    assert path.stat().st_size == entry.size
    assert sha256sum(path) == entry.sha256
    state, meta = read_safetensors(path)
    assert (meta["model"], meta["period"]) == (model, period)
    assert all(t.dtype == torch.float16 for t in state.values() if t.is_floating_point())
    MODELS[model].build(period).load_state_dict(state, strict=True)


def test_convert_runs_the_bundled_hdrflow_without_weights_option(clip2, tmp_path):
    """A fresh clone converts with `-m hdrflow` alone; `weights pull` finds the file in place."""
    (entry,) = MODELS["hdrflow"].weights[2]
    bundled = weights_module.WEIGHTS_DIR / entry.filename
    outputs = {}
    for name, extra in (("default", ()), ("explicit", ("--weights", bundled))):
        result = run("convert", clip2.path, "-o", tmp_path / name, "-m", "hdrflow", "--frames",
                     "4", "-q", *extra)
        assert result.exit_code == 0, result.output
        outputs[name] = read_exr(tmp_path / name / "frame_000002.exr")[0]
    np.testing.assert_array_equal(outputs["default"], outputs["explicit"])
    assert np.isfinite(outputs["default"]).all() and outputs["default"].max() > 0.5
    result = run("weights", "pull", "hdrflow", "--exposures", "2", "--source", "hdrvid")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(bundled)


def test_runs_as_shipped_follows_the_registered_files():
    """The benchmarks run a model on an exposure count only where it needs no --weights."""
    hdrflow = dataclasses.replace(MODELS["hdrflow"], weights={2: MODELS["hdrflow"].weights[2]})
    assert hdrflow.runs_as_shipped(2) and not hdrflow.runs_as_shipped(3)
    assert MODELS["merge"].runs_as_shipped(2) and MODELS["merge"].runs_as_shipped(3)
    assert not dataclasses.replace(hdrflow, weights={}).runs_as_shipped(2)
    assert not MODELS["merge"].runs_as_shipped(4)
