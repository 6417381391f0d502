"""Is an error the disk refusing (full, read-only, I/O, permissions, a lock held), or a file
that is simply wrong? The outbox waits the first out in memory and the history reports it;
the second needs a person. One list of codes for every SQLite file of the roller.
"""

from __future__ import annotations

import errno
import sqlite3

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT})
"""OS errors of a disk that refuses (a file in the way or a permission is a setup mistake)."""

DISK_SQLITE_CODES = frozenset(
    code for code in (getattr(sqlite3, name, None) for name in (
        "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM",
        "SQLITE_BUSY", "SQLITE_LOCKED")) if code is not None)
"""SQLite's primary result codes for a write the disk (or another holder of the file) refused:
it may work later. A file that is not a database (SQLITE_NOTADB, SQLITE_CORRUPT) is not one."""


def is_disk_fault(exc: BaseException) -> bool:
    """``exc`` is the disk refusing, not a file that is wrong (see the module docstring)."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_ERRNOS
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in DISK_SQLITE_CODES
