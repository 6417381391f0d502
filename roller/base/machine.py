"""Who this machine is: a short stable hash of its identity, for ids that differ per machine.

Two Raspberry Pis left with the host name ``raspberrypi`` must not get the same default device
id (they would kick each other off the broker and mix their ``seq`` numbers), and a roller must
keep its id across restarts. :func:`machine_hash` hashes ``/etc/machine-id`` (systemd writes it
once, at the first boot; ``/var/lib/dbus/machine-id`` on older systems), falling back to the
host name, so it is stable for the life of the installation and says nothing about the machine
(a hash, not the id itself). :func:`run_token` is random per process start.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import socket
from pathlib import Path

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
HASH_CHARS = 6
"""Hex digits of the hash: 16.7 million values, plenty for the rollers of one broker."""


def machine_hash(files: tuple[Path, ...] = MACHINE_ID_FILES) -> str:
    """``HASH_CHARS`` hex digits of SHA-256 over the first machine id file that can be read
    (else the host name): the same on every start of this installation."""
    return _machine_hash(files)


@functools.cache
def _machine_hash(files: tuple[Path, ...]) -> str:
    identity = ""
    for path in files:
        try:
            identity = path.read_text(encoding="ascii", errors="replace").strip()[:200]
        except OSError:
            continue
        if identity:
            break
    identity = identity or f"host:{socket.gethostname()}"
    return hashlib.sha256(f"roller-companion:{identity}".encode()).hexdigest()[:HASH_CHARS]


@functools.cache
def run_token() -> str:
    """A random id for this process (8 hex digits), the same for its whole life."""
    return secrets.token_hex(4)
