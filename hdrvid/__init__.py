"""hdrvid: alternating-exposure video to linear HDR video.

Library API (the CLI is a thin layer over it)::

    import hdrvid
    report = hdrvid.convert("input.mp4", "out/", hdrvid.ConvertOptions(model="merge"))
"""

__version__ = "0.1.0"

from hdrvid.convert import ConvertOptions, Report, convert  # noqa: E402
from hdrvid.exposure import ExposurePattern, detect_exposure_pattern  # noqa: E402
from hdrvid.predictor import HdrPredictor  # noqa: E402
from hdrvid.registry import available_models  # noqa: E402

__all__ = ["ConvertOptions", "ExposurePattern", "HdrPredictor", "Report", "available_models",
           "convert", "detect_exposure_pattern", "__version__"]
