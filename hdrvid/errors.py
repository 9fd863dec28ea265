"""Exceptions raised by hdrvid. Each message names the file and says what to do next."""


class HdrvidError(Exception):
    """Base class: a problem the user can fix; the CLI prints it as one line and exits 1."""


class InputError(HdrvidError):
    """The input video cannot be read or is unsuitable."""


class ExposureError(HdrvidError):
    """The exposure pattern is missing, inconsistent or cannot be detected."""


class ModelError(HdrvidError):
    """Unknown model, unsupported exposure count, or unusable weights."""


class WeightsError(ModelError):
    """Weights are missing, damaged, unsafe to read, or made for another model."""


class OutputError(HdrvidError):
    """The output folder cannot be written safely."""


class EvalError(HdrvidError):
    """PRED or GT cannot be evaluated: missing, empty, or the wrong kind of path."""


class FrameMismatchError(EvalError):
    """PRED and GT do not match: frame counts, frame names or image sizes differ."""


class ExrReadError(EvalError):
    """An EXR frame cannot be read."""


class MetricUnavailableError(EvalError):
    """An optional metric was asked for but its package cannot be used."""
