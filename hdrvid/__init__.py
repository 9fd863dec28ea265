"""hdrvid: alternating-exposure video to linear HDR video.

Library API (the CLI is a thin layer over it)::

    import hdrvid
    report = hdrvid.convert("input.mp4", "out/", hdrvid.ConvertOptions(model="merge"))

Names are imported on first use, so ``import hdrvid`` (and ``hdrvid --help``) do not pay for
importing torch.
"""

import importlib
import os

# OpenMP threads out of work spin 300,000 rounds before they sleep (libgomp's default), taking
# the cores from a conversion's DIS, decode and EXR threads: with 10,000, merge at 640×360 ran
# 13.96 fps end to end against 13.04 (5 interleaved runs), hdrflow and lan-hdr as fast as before.
# libgomp reads it when torch loads it, so it is set before anything here imports torch; a
# value in the environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

_EXPORTS = {
    "ConvertOptions": "hdrvid.pipeline", "Report": "hdrvid.pipeline", "convert": "hdrvid.pipeline",
    "resolve_exposures": "hdrvid.pipeline",
    "ExposurePattern": "hdrvid.exposure", "detect_exposure_pattern": "hdrvid.exposure",
    "HdrPredictor": "hdrvid.predictor",
    "available_models": "hdrvid.registry", "get_spec": "hdrvid.registry",
    "probe": "hdrvid.video", "read_frames": "hdrvid.video",
}
__all__ = ["ConvertOptions", "ExposurePattern", "HdrPredictor", "Report", "__version__",
           "available_models", "convert", "detect_exposure_pattern", "get_spec", "probe",
           "read_frames", "resolve_exposures"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hdrvid' has no attribute {name!r}")
