"""One service per state directory: an exclusive lock on ``<state dir>/roller.lock``.

Why: two ``roller run`` on one state directory (the same config started twice, or two runs
without a config by one user) share the outbox, the history and the calibration. They crashed
each other within a minute and stamped the same ``(epoch, seq)`` on different events, which a
subscriber then drops as duplicates. The second one must refuse to start, and say which process
holds the directory.

How: ``fcntl.flock`` on a file in the directory, held for the life of the process (the kernel
releases it when the process ends, however it ends: no stale lock after a crash or a power
cut). The holder writes its pid and command line into the file, so a refusal can name it.
The refusal is a :class:`StateDirInUseError`, a :class:`~roller.base.errors.ConfigError`: ``roller
run`` exits 78 (EX_CONFIG) with one line, and systemd does not restart it in a loop (the fix is
a different ``state_dir``, or stopping the other service).

Within one process the lock is taken once per directory and kept (a test that builds the
service twice on one directory, a restart in-process, is not refused).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
from pathlib import Path

from roller.base.errors import ConfigError

LOCK_FILE_NAME = "roller.lock"

_held: dict[Path, StateLock] = {}
_held_lock = threading.Lock()


class StateDirInUseError(ConfigError):
    """Another process holds the state directory's lock. ``holder``: its pid and command."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        # ConfigError's fields, with a sentence of our own: the problem is not a typo.
        self.key, self.where = "state_dir", ""
        self.expected, self.actual = "a state directory no other roller uses", str(state_dir)
        self.holder = holder
        Exception.__init__(self, f"state_dir {state_dir} is in use by another roller "
                                 f"({holder}): stop it, or give this one its own state_dir")


class StateLock:
    """The lock on one state directory (see the module docstring). Use :func:`hold_state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateDirInUseError` naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateDirInUseError(self.state_dir, holder) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {_command_line()}\n".encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (the process's end does it too)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


def hold_state_dir(state_dir: str | Path) -> StateLock:
    """Lock ``state_dir`` for the rest of this process (once per directory and process)."""
    key = Path(state_dir).resolve()
    with _held_lock:
        lock = _held.get(key)
        if lock is None or not lock.held:
            lock = StateLock(key)
            lock.acquire()
            _held[key] = lock
        return lock


def release_state_dir(state_dir: str | Path) -> None:
    """Release a lock :func:`hold_state_dir` took (for tests; a service keeps it to the end)."""
    with _held_lock:
        lock = _held.pop(Path(state_dir).resolve(), None)
    if lock is not None:
        lock.release()


def _read_holder(fd: int) -> str:
    """``pid N: command`` from the lock file, as the holder wrote it."""
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "a process that has not written its pid yet"
    return f"pid {pid}: {command[:200]}" if command else f"pid {pid}"


def _command_line() -> str:
    """This process's command line, as ``ps`` shows it."""
    try:
        argv = Path("/proc/self/cmdline").read_bytes().split(b"\0")
        words = [a.decode(errors="replace") for a in argv if a]
    except OSError:
        words = list(sys.argv)
    return " ".join(" ".join(words).split())  # one line, whatever the arguments hold
