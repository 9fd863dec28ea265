"""hdrvid: alternating-exposure video to linear HDR video.

Library API (the CLI is a thin layer over it)::

    import hdrvid
    report = hdrvid.convert("input.mp4", "out/", hdrvid.ConvertOptions(model="merge"))

Names are imported on first use, so ``import hdrvid`` (and ``hdrvid --help``) do not pay for
importing torch. Importing hdrvid changes nothing in the process: the tuning the CLI does for
speed (OpenMP spin count, malloc's reuse of freed memory) is `hdrvid.tune_process()`, to call
before importing torch.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ConvertOptions": "hdrvid.job", "Report": "hdrvid.job", "convert": "hdrvid.conversion",
    "ExposureHints": "hdrvid.exposure", "resolve_exposures": "hdrvid.exposure",
    "ExposurePattern": "hdrvid.exposure", "detect_exposure_pattern": "hdrvid.exposure",
    "HdrPredictor": "hdrvid.predictor",
    "available_models": "hdrvid.registry", "get_spec": "hdrvid.registry",
    "probe": "hdrvid.video", "read_frames": "hdrvid.video",
    "tune_process": "hdrvid.process",
}
__all__ = ["ConvertOptions", "ExposureHints", "ExposurePattern", "HdrPredictor", "Report", "__version__",
           "available_models", "convert", "detect_exposure_pattern", "get_spec", "probe",
           "read_frames", "resolve_exposures", "tune_process"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hdrvid' has no attribute {name!r}")
