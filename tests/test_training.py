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
