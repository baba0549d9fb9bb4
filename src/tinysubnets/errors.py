"""User-facing errors: one clear message, no traceback from deep inside torch or numpy."""

import reprlib


class TSNError(Exception):
    """A problem the user can fix (bad file, flag or task id); the CLI prints it, exits 2."""


class DataError(TSNError):
    """A data file is missing, truncated, corrupt, or has an unexpected shape."""


class TaskIdError(TSNError, IndexError):
    """A task id the model does not hold (not yet trained, or beyond the scenario)."""


class ShapeError(DataError, ValueError):
    """Inputs whose shape does not fit the backbone (a kind of bad data)."""


class WriteError(TSNError):
    """A file could not be written (no space, read-only, permission): the file named keeps its
    last complete version, since every write is atomic."""


class ConfigError(TSNError):
    """A setting is out of range or inconsistent (e.g. a resume folder from another run)."""


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlong = 40
_SHOWN.maxlevel = 3
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = 6


def shown(value: object) -> str:
    """A value from an untrusted file, as a message may quote it: a short repr whatever its
    size or depth (a 5 MB string or a 500-deep list must not make a 5 MB message)."""
    try:
        return _SHOWN.repr(value)
    except (ValueError, RecursionError):  # e.g. an int past Python's digit limit
        return f"<{type(value).__name__}>"


def clipped(text: str, limit: int = 80) -> str:
    """A name from an untrusted file, cut in the middle to at most about ``limit`` characters."""
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"
