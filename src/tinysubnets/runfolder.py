"""A run folder has one writer at a time, and is checked before any work is done.

The lock is an ``flock`` on ``<folder>/.lock`` held for the whole run: a second ``tsn run`` into
the same folder is refused with the process that holds it, instead of both writing a mix of
files. The kernel drops the lock when its process ends, however it ends, so a killed run never
leaves the folder locked. Temporary files of a killed writer (``.<name>.<hex>.part``, see
`atomic`) are removed once the lock is held: no other writer can own them then.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinysubnets.errors import ConfigError

LOCK = ".lock"

try:  # POSIX; elsewhere a run folder is not locked (and the README says so)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def check_out(out: Path) -> None:
    """Raise ConfigError unless ``out`` can be a run folder: a folder, or a path that can be
    created under a writable folder. Nothing is created."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: it is a file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is a file, so no folder can be made under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {parent} is not writable")


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Create ``out`` if needed, hold its lock for the block, clear a killed writer's
    leftovers. Raise ConfigError naming the process that holds the lock."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK, "a+")  # noqa: SIM115 (held for the whole block)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot be used ({e.strerror})") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read(200).strip() or "another process"
                raise ConfigError(
                    f"{out} is in use by {holder}: wait for that run to end, or pass another "
                    "--out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        for leftover in out.glob(".*.part"):
            leftover.unlink(missing_ok=True)
        yield
    finally:
        handle.close()  # releases the lock
