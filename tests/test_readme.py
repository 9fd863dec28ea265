"""The README stays a user's README: short, its commands the ones CI runs, its options real."""

import re
from pathlib import Path

from click.testing import CliRunner

from hdrvid.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_is_short_and_ci_runs_its_test_command():
    assert len(README.splitlines()) <= 300
    assert "python -m pytest -q" in README
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "python -m pytest -q"
    assert "hdrvid convert samples/lamps-2exp.mp4" in README
    assert "download.pytorch.org/whl/cpu" in README  # how to get PyTorch without CUDA


def test_every_option_in_the_options_table_exists():
    table = README.split("## Options", 1)[1].split("\n## ", 1)[0]
    options = set(re.findall(r"`(--[a-z0-9-]+)", table))
    helps = CliRunner().invoke(main, ["convert", "--help"]).stdout
    missing = {o for o in options if o not in helps}
    assert not missing, missing
