"""Files only their owner can read, written whole or not at all.

Recordings and exported datasets hold what an exchange sent to an account, so
both are written the same way: every directory wsresearch creates is ``0700``
and every file ``0600``, whatever the umask, and a file appears under its name
only once it is complete. A file is written to a new temporary name in its own
folder (created exclusively, so a symlink or file planted at a predictable
name is never followed or overwritten), flushed to disk, and renamed over the
target. A crash leaves the old file or the new one, plus at most a ``*.tmp``
that readers skip. Parquet tables, a recording's segments and an export's files
alike, go through :func:`write_private_parquet`, so both get these guarantees.

Directories that already exist are left as they are: wsresearch never changes
the permissions of a folder it did not create.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import sys
import tempfile
from pathlib import Path

import polars as pl

__all__ = [
    "CAN_LOCK", "PRIVATE_DIR", "PRIVATE_FILE", "exchange_paths", "hold_file",
    "make_private_dirs", "sink_private_parquet", "sync_path", "write_private",
    "write_private_parquet",
]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

try:
    import fcntl
except ImportError:  # Windows: no flock, and so no telling who holds a lock file
    fcntl = None  # type: ignore[assignment]

CAN_LOCK = fcntl is not None
"""Whether :func:`hold_file` can hold a file here (``flock``: Linux, macOS)."""


def hold_file(descriptor: int, *, shared: bool = False, wait: bool = True) -> None:
    """Hold the file ``descriptor`` is open on (``flock``), until it is closed.

    The kernel lets go of it when the process ends, however it ends: a recording's lock
    file held by nobody was left by a writer that was killed. Only where
    :data:`CAN_LOCK`.

    Raises
    ------
    BlockingIOError
        Without ``wait``, where another holds it (exclusively, or at all for an
        exclusive hold).
    """
    assert fcntl is not None, "only where CAN_LOCK"
    fcntl.flock(descriptor, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                | (0 if wait else fcntl.LOCK_NB))


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each readable by its owner only.

    Folders that exist already keep their permissions.

    Raises
    ------
    OSError
        If a folder cannot be created, or something that is not a folder is in the way.
    """
    missing = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made meanwhile by someone else: theirs, left as it is
        os.chmod(folder, PRIVATE_DIR)  # the umask may have taken the owner's bits too


def write_private(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically, the file readable by its owner only.

    The bytes go to a temporary file made with ``O_EXCL`` in the same folder
    (never an existing file or a symlink), are flushed to disk, and the file is
    renamed to ``path``. On any failure the temporary file is removed and the
    error raised: ``path`` is untouched.

    Raises
    ------
    OSError
        What the filesystem said (``ENOSPC``, ``EACCES``...).
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a torn file would only take space
            os.unlink(temporary)
        raise


def write_private_parquet(
    table: pl.DataFrame, path: Path, *, compression_level: int | None = None,
    row_group_size: int | None = None,
) -> None:
    """Write ``table`` to ``path`` as zstd Parquet, atomically and privately.

    Missing folders are made owner-only (:func:`make_private_dirs`). The file is
    encoded in memory first, then written with :func:`write_private`: a failing
    disk then surfaces as the operating system's error itself (``ENOSPC``,
    ``EIO``), not as a polars "transport error", and never as a torn file.

    Parameters
    ----------
    table
        What to write.
    path
        The file; replaced whole if it exists.
    compression_level
        zstd's level; ``None``: polars' default.
    row_group_size
        Rows per row group; ``None``: polars' default.

    Raises
    ------
    OSError
        What the filesystem said.
    """
    make_private_dirs(path.parent)
    encoded = io.BytesIO()
    table.write_parquet(encoded, compression="zstd", compression_level=compression_level,
                        statistics=True, row_group_size=row_group_size)
    write_private(path, encoded.getbuffer())


def sink_private_parquet(table: pl.LazyFrame, path: Path, *, row_group_size: int) -> Path:
    """Stream ``table`` into a new private file beside ``path``, to be renamed over it.

    As :func:`write_private_parquet`, for a table too large to hold, in two steps so that
    several files can be written before any is put in place: polars' streaming engine
    writes it a row group at a time into a new temporary file in ``path``'s folder
    (``O_EXCL``, ``0600``, named ``<name>.<random>.tmp``), which is synced; the caller
    renames it over ``path`` (``os.replace``: in one folder, so atomic and never across
    filesystems) or removes it. Every row group but the last holds ``row_group_size`` rows,
    however the rows come in: the same rows make the same file.

    Returns
    -------
    Path
        The temporary file written.

    Raises
    ------
    OSError
        What the filesystem said, or why polars could not write (as an ``OSError``); the
        temporary file is removed.
    """
    make_private_dirs(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_FILE)
        os.close(fd)
        try:
            table.sink_parquet(temporary, compression="zstd", statistics=True,
                               row_group_size=row_group_size, sync_on_close="all")
        except pl.exceptions.PolarsError as exc:
            raise OSError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return Path(temporary)


def sync_path(path: Path) -> None:
    """Flush ``path`` to disk: a file's data, or a folder's names (made, renamed, removed).

    Raises
    ------
    OSError
        What the filesystem said.
    """
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap the names of two paths in one atomic step; ``False`` where that cannot be done.

    Linux's ``renameat2(RENAME_EXCHANGE)``: whoever looks finds each name always there,
    holding one or the other. Elsewhere (another system, a C library without the call, a
    filesystem that does not support it) nothing is changed and ``False`` is returned, for
    the caller to do without.

    Raises
    ------
    OSError
        What the filesystem said, where it supports the call (a path missing, no room).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                     ctypes.c_uint]
    call.restype = ctypes.c_int
    if call(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
            _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))
