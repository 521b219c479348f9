"""One exception family for user-facing failures.

Each message says what went wrong and what to do. The CLI prints it as one line and exits
non-zero; any other exception is a bug and shows a traceback.
"""


class EdgeError(Exception):
    """A failure the user can act on."""

    exit_code = 2

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(what if not fix else f"{what}; {fix}")


class BundleError(EdgeError):
    """The bundle or its manifest is missing, corrupt, tampered or of another version."""


class ModelError(EdgeError):
    """A model file cannot be loaded or used."""


class DataError(EdgeError):
    """Input data (images, arrays, folders, video, camera) cannot be used."""


class ConversionError(EdgeError):
    """Conversion cannot go on at all (single-variant failures are recorded, not raised)."""


class RuntimeUnavailable(EdgeError):
    """No interpreter runtime, or the requested accelerator, is available."""


class RemoteError(EdgeError):
    """A board could not be reached or refused an operation."""
