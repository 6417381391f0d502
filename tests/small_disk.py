"""A real, tiny filesystem for disk-fault tests: a tmpfs mounted in the test's folder.

Filling it makes the kernel answer ENOSPC: what SQLite sees on a Pi whose SD card is full.
(Remounting it read-only is refused while a file on it is open for writing.) Mounting needs root
(CAP_SYS_ADMIN); where that is impossible the tests using it skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A mounted tmpfs of ``size_bytes`` at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> None:
        """Write a filler file until the kernel refuses (ENOSPC), down to the last byte."""
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 16, 4096, 1):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * size):
                        pass
        finally:
            os.close(fd)

    def free(self) -> None:
        """Delete the filler file: the disk has room again."""
        self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(folder: Path, size_bytes: int = 1 << 20) -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size_bytes`` at ``folder/disk`` for the ``with`` block (skip when
    mounting is impossible here)."""
    path = folder / "disk"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for disk-fault tests needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs",
                           str(path)], capture_output=True, text=True, timeout=10, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10,
                       check=False)
