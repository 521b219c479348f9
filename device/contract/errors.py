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


class RuntimeUnavailable(EdgeError):
    """No interpreter runtime, or the requested accelerator, is available."""


class ConfigError(DataError):
    """A configuration field has a value the library cannot use.

    The message names the *field* (``calib_samples``), never a command-line flag: the command line,
    which knows which flag sets which field, rewrites the name with :meth:`renamed`.
    """

    def __init__(self, field: str, problem: str, fix: str | None = None):
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}", fix)

    def renamed(self, name: str) -> "ConfigError":
        """The same error with the field shown as ``name`` (a flag, for the CLI)."""
        err = ConfigError(self.field, self.problem, self.fix)
        err.what = f"{name} {self.problem}"
        err.args = (err.what if not err.fix else f"{err.what}; {err.fix}",)
        return err
