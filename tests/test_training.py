"""`hdrvid train`'s data folder: --data, else $HDRVID_DATA, never a guess from where the package
lies; without either, a one-line error that says what to pass."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from hdrvid.cli import main
from hdrvid.errors import HdrvidError
from hdrvid.training.data import DATA_ENV, data_folder


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_without_data_folder_train_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    result = run("train", tmp_path / "run", "--steps", "1")
    assert_one_line_error(result, "pass --data DIR or set HDRVID_DATA")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_missing_data_folder_is_named(tmp_path, monkeypatch, how):
    missing = tmp_path / "nowhere"
    monkeypatch.delenv(DATA_ENV, raising=False)
    if how == "option":
        result = run("train", tmp_path / "run", "--steps", "1", "--data", missing)
    else:
        monkeypatch.setenv(DATA_ENV, str(missing))
        result = run("train", tmp_path / "run", "--steps", "1")
    assert_one_line_error(result, str(missing), "--data" if how == "option" else DATA_ENV,
                          "no such folder")
    assert not (tmp_path / "run").exists()


def test_the_option_wins_over_the_environment(tmp_path, monkeypatch):
    given, environment = tmp_path / "given", tmp_path / "environment"
    given.mkdir()
    environment.mkdir()
    monkeypatch.setenv(DATA_ENV, str(environment))
    assert data_folder(str(given)) == given
    assert data_folder(None) == environment
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(HdrvidError, match="pass --data DIR"):
        data_folder(None)


def test_no_library_module_guesses_the_shared_folder():
    """The data folder is the caller's to give: no module computes ../shared from its own path."""
    package = Path(__file__).resolve().parents[1] / "hdrvid"
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert '"shared"' not in text and "'shared'" not in text, path


def test_each_models_step_sits_in_its_spec():
    """One registry: a model's training step is a field of its spec, defined beside its network;
    models without one train on the output of their registered forward."""
    from hdrvid.models import f2hdr, hdrflow
    from hdrvid.registry import MODELS
    from hdrvid.training.loop import TrainOptions, default_step, step_function

    assert MODELS["hdrflow"].train_step is hdrflow.hdrflow_step
    assert MODELS["f2hdr"].train_step is f2hdr.f2hdr_step
    bound = step_function(MODELS["hdrflow"], TrainOptions(flow_weight=0.25))
    assert bound.func is hdrflow.hdrflow_step and bound.keywords == {"flow_weight": 0.25}
    default = step_function(MODELS["kalantari19"], TrainOptions(model="kalantari19"))
    assert default.func is default_step and default.keywords == {"spec": MODELS["kalantari19"]}


def test_a_model_without_a_step_of_its_own_trains(tmp_path, training_data):
    from hdrvid.training.loop import TrainOptions, train

    options = TrainOptions(model="kalantari19", steps=2, batch_size=1, crop=32, val_every=2,
                           val_windows=1, workers=0, device="cpu", precision="fp32")
    record = train(tmp_path / "run", options)
    assert record["step"] == 2 and record["total"] == record["loss"] > 0
    assert record["merge_psnr_t"] > 20 and (tmp_path / "run" / "best.safetensors").is_file()
