"""Exceptions raised by hdrvid. Each message names the file and says what to do next."""


class HdrvidError(Exception):
    """Base class: a problem the user can fix; the CLI prints it as one line and exits 1."""


class InputError(HdrvidError):
    """The input video cannot be read or is unsuitable."""


class ExposureError(HdrvidError):
    """The exposure pattern is missing, inconsistent or cannot be detected."""


class ModelError(HdrvidError):
    """Unknown model, unsupported exposure count, or unusable weights."""


class OutputError(HdrvidError):
    """The output folder cannot be written safely."""
