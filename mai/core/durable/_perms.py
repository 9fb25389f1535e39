"""Who can read a SQLite store: private files in pymai's own folder, a warning elsewhere.

A store holds every run's inputs and outputs. pymai's own folder (a directory named ``.mai``,
by default ``.mai/`` in the current directory) is made private whatever the umask: the folder
0700, the database and its ``-wal``/``-shm`` files 0600, tightened when an earlier release
created them readable. A location the user chose keeps its permissions; when other users can
read the database there, :class:`StorePermissionWarning` says so once per file and process.
A directory or database file that pymai creates itself is created private everywhere (0700,
0600): SQLite gives the ``-wal``/``-shm`` files the mode of the database file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from pathlib import Path

from ._errors import StorePermissionWarning

#: The name of pymai's own store folder (``sqlite:///.mai/mai.db``).
OWN_FOLDER = ".mai"
DIR_MODE = 0o700
FILE_MODE = 0o600
_COMPANIONS = ("", "-wal", "-shm")
_warned: set[Path] = set()


def is_own_folder(directory: Path) -> bool:
    """Whether ``directory`` is a pymai store folder (named ``.mai``), whose modes pymai sets."""
    return directory.name == OWN_FOLDER


def make_directory(directory: Path) -> None:
    """Create ``directory`` (and missing parents); the directory itself private (0700)."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        directory.chmod(DIR_MODE)  # mkdir's mode passes through the umask; set it exactly


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite fills an empty file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def tighten(path: Path) -> None:
    """Make pymai's own folder and the database files in it private (owner only).

    Files this process cannot change (owned by another user) are left as they are and checked
    like a chosen location instead.
    """
    targets = [(path.parent, DIR_MODE)] + [
        (Path(f"{path}{suffix}"), FILE_MODE) for suffix in _COMPANIONS
    ]
    for target, mode in targets:
        try:
            current = stat.S_IMODE(target.stat().st_mode)
            if current & 0o077:  # keep the owner's bits, add what pymai needs, drop the rest
                target.chmod((current & 0o700) | mode)
        except FileNotFoundError:
            continue
        except PermissionError:
            warn_if_readable(path)
            return


def readable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may read ``path``.

    True when the file grants read to its group or to others and every directory above it
    lets that same class through (execute bit), judged by mode bits alone.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    for read, search in ((stat.S_IRGRP, stat.S_IXGRP), (stat.S_IROTH, stat.S_IXOTH)):
        if not mode & read:
            continue
        try:
            reachable = all(p.stat().st_mode & search for p in path.resolve().parents)
        except OSError:
            reachable = True
        if reachable:
            return True
    return False


def warn_if_readable(path: Path) -> None:
    """Warn once per file and process when others can read ``path`` or its companions."""
    key = path.absolute()
    if key in _warned:
        return
    files = [Path(f"{path}{suffix}") for suffix in _COMPANIONS]
    exposed = [f for f in files if readable_by_others(f)]
    if not exposed:
        return
    _warned.add(key)
    modes = ", ".join(f"{f} {stat.S_IMODE(f.stat().st_mode):04o}" for f in exposed)
    warnings.warn(
        f"SQLite store {str(path)!r} can be read by other users ({modes}); it holds every "
        f"run's inputs and outputs: make it private with chmod 600 {' '.join(map(str, files))} "
        f"(or chmod 700 {str(path.parent)!r})",
        StorePermissionWarning,
        stacklevel=2,
    )


def secure(path: Path) -> None:
    """Before SQLite opens ``path``: create it private if new, then tighten or check."""
    create_private_file(path)
    if is_own_folder(path.absolute().parent):
        tighten(path)
    else:
        warn_if_readable(path)
