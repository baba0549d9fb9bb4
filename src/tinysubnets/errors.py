"""User-facing errors: one clear message, no traceback from deep inside torch or numpy."""


class TSNError(Exception):
    """A problem the user can fix (bad file, flag or task id); the CLI prints it, exits 2."""


class DataError(TSNError):
    """A data file is missing, truncated, corrupt, or has an unexpected shape."""


class TaskIdError(TSNError, IndexError):
    """A task id the model does not hold (not yet trained, or beyond the scenario)."""


class ShapeError(TSNError, ValueError):
    """Inputs whose shape does not fit the backbone."""


class WriteError(TSNError):
    """A file could not be written (no space, read-only, permission): the file named keeps its
    last complete version, since every write is atomic."""


class ConfigError(TSNError):
    """A setting is out of range or inconsistent (e.g. a resume folder from another run)."""
