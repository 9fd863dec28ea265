"""A regular (non-editable) install runs its own shipped weights.

The package is built from a copy of the source tree and installed with pip into a fresh virtual
environment that reads this environment's packages (torch, PyAV, ...) through a .pth file, so
the test needs no network; then the installed `hdrvid` script converts the sample clip with
`-m hdrflow` from another folder, where no weights/ of a checkout is in sight.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from hdrvid.exr import frame_name, read_exr

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "lamps-2exp.mp4"


def _fresh_venv(root: Path) -> Path:
    """A venv without pip of its own whose sys.path ends with this environment's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([str(python), "-c", code],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "parent-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _source_copy(root: Path) -> Path:
    """What a clone holds for building: the build leaves build/ and *.egg-info in its tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("hdrvid", "weights"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    return root


@pytest.mark.slow
def test_a_regular_install_converts_the_sample_with_its_shipped_weights(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    source = _source_copy(tmp_path / "src")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("HDRVID_WEIGHTS", None)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                              "--no-build-isolation", str(source)],
                             check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import hdrvid.weights as w; print(w.__file__); print(w.WEIGHTS_DIR)"
    where = subprocess.run([str(python), "-c", code],
                           capture_output=True, text=True, check=True, cwd=elsewhere, env=env)
    module, weights_dir = where.stdout.split()
    installed = Path(sysconfig.get_paths(vars={"base": str(tmp_path / "venv")})["purelib"])
    assert Path(module).is_relative_to(tmp_path / "venv"), module  # not this checkout's
    assert Path(weights_dir) == Path(module).parent / "_weights"
    assert sorted(p.name for p in Path(weights_dir).glob("*.safetensors")) == \
        sorted(p.name for p in (REPO / "weights").glob("*.safetensors"))
    # every module of the source tree made it into the wheel (the package list is explicit)
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "hdrvid").rglob("*.py")}
    wheel = {p.relative_to(installed).as_posix() for p in (installed / "hdrvid").rglob("*.py")}
    assert sources <= wheel, sources - wheel

    convert = subprocess.run([str(tmp_path / "venv" / "bin" / "hdrvid"), "convert", str(SAMPLE),
                              "-o", "out", "-m", "hdrflow", "--frames", "6", "-q"],
                             check=False, capture_output=True, text=True, cwd=elsewhere, env=env)
    assert convert.returncode == 0, convert.stderr
    frame = read_exr(elsewhere / "out" / frame_name(5))[0]
    assert frame.shape == (360, 640, 3) and np.isfinite(frame).all() and frame.max() > 0.05
