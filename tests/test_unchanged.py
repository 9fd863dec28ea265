"""Outputs stay bit-identical across refactors: every output kind of `merge`, and `f2hdr` and
`hdrflow` EXRs, on the committed sample and on synthetic clips, hashed and compared with
`tests/checksums.json`.

The checksums depend on the exact builds of torch, OpenCV, FFmpeg and OpenEXR and on the CPU's
instruction set (oneDNN picks kernels by it), so they are recorded together with a fingerprint
of those; on another machine the test skips and says why. Record after a deliberate change of
results with ``python tests/test_unchanged.py --record``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("checksums.json")
SAMPLE = REPO / "samples" / "lamps-2exp.mp4"

# (name, clip, options): the clip is "sample" or a synthetic cycle rendered like conftest's clips
CASES = [
    ("sample-merge-exr", "sample", dict(model="merge", max_frames=4)),
    ("sample-merge-sdr", "sample", dict(model="merge", max_frames=4, format="sdr")),
    ("clip2-merge-all", (1, 8), dict(model="merge", format="all")),
    ("clip3-merge-exr", (1, 4, 16), dict(model="merge")),
    ("clip2-hdrflow-exr", (1, 8), dict(model="hdrflow")),
    ("clip3-hdrflow-exr", (1, 4, 16), dict(model="hdrflow", max_frames=6)),
    ("clip2-f2hdr-exr", (1, 8), dict(model="f2hdr", max_frames=6)),
    ("clip3-f2hdr-exr", (1, 4, 16), dict(model="f2hdr", max_frames=6)),
    ("clip2-merge-hlg", (1, 8), dict(model="merge", format="hlg", max_frames=6)),
    ("clip2-merge-prores", (1, 8), dict(model="merge", format="prores", max_frames=6)),
    ("clip2-merge-dnxhr", (1, 8), dict(model="merge", format="dnxhr", max_frames=6)),
    ("clip2-merge-midgrey", (1, 8),
     dict(model="merge", scale="mid-grey", max_frames=6, float32=True)),
]
# a tone-mapped PNG sequence and SDR video from one EXR folder (`hdrvid tonemap`)
TONEMAPS = [("tonemap-png", "png", {}), ("tonemap-sdr-reinhard", "sdr", {"operator": "reinhard"})]

# sidecar fields that record where, when and how fast a run went, not what it made
VOLATILE = {"seconds", "fps", "stages", "throughput", "bottleneck", "host_peak_bytes",
            "gpu_peak_bytes", "path", "input",
            "output"}


def fingerprint() -> dict:
    import av
    import cv2
    import OpenEXR
    import torch

    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "opencv": cv2.__version__, "ffmpeg": str(av.library_versions.get("libavcodec")),
            "pyav": av.__version__, "openexr": getattr(OpenEXR, "__version__", "?"),
            "numpy": np.__version__}


def _hash_file(path: Path) -> str:
    if path.suffix == ".exr":
        return _hash_exr(path)
    if path.name == "hdrvid.json":
        return _hash_sidecar(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _hash_exr(path: Path) -> str:
    import OpenEXR

    digest = hashlib.sha256()
    with OpenEXR.File(str(path), separate_channels=True) as f:
        header = f.header()
        for key in sorted(header):
            digest.update(f"{key}={header[key]!r}".encode())
        for name, channel in sorted(f.channels().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(channel.pixels).tobytes())
    return digest.hexdigest()[:16]


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _hash_sidecar(path: Path) -> str:
    data = _strip(json.loads(path.read_text()))
    text = json.dumps(data, sort_keys=True).replace(str(path.parent.parent), "<root>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _hash_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _clip(spec, root: Path) -> Path:
    if spec == "sample":
        return SAMPLE
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import render_clip

    path = root / f"clip{'-'.join(str(c) for c in spec)}.mp4"
    if not path.exists():
        render_clip(path, spec, 12 if len(spec) == 2 else 15, seed=3)
    return path


def outputs(root: Path) -> dict[str, dict[str, str]]:
    """Every case's output files and their hashes, made under ``root``."""
    import torch

    from hdrvid import ConvertOptions, convert
    from hdrvid.render import RenderOptions, render

    torch.set_num_threads(1)
    result = {}
    for name, clip, options in CASES:
        out = root / name
        convert(_clip(clip, root), out, ConvertOptions(**options))
        result[name] = _tree(out)
    source = root / "clip2-merge-all"
    for name, kind, options in TONEMAPS:
        out = root / name / ("frames" if kind == "png" else "video.mp4")
        out.parent.mkdir(parents=True)
        render(source, out, kind, RenderOptions(**options))
        result[name] = _tree(out.parent)
    return result


def test_outputs_are_unchanged(tmp_path):
    recorded = json.loads(RECORD.read_text())
    if recorded["fingerprint"] != fingerprint():
        pytest.skip(f"checksums were recorded with {recorded['fingerprint']}, "
                    f"this machine has {fingerprint()}")
    made = outputs(tmp_path)
    for name, files in recorded["outputs"].items():
        assert made[name] == files, name


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        made = outputs(Path(folder))
    RECORD.write_text(json.dumps({"fingerprint": fingerprint(), "outputs": made}, indent=1) + "\n")
    print(f"recorded {sum(len(v) for v in made.values())} files in {RECORD}")
