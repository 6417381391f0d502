"""The default device id: who this roller is on a shared broker when ``[device] id`` is empty.

The rule a configured id must follow (:data:`roller.contract.messages.SAFE_ID`) is part of the
MQTT contract; this is only how an id is made up when none is configured.
"""

from __future__ import annotations

import re
import socket

from roller.base.machine import machine_hash

MAX_DEVICE_ID_CHARS = 64
"""Longest device id (a topic level; the contract's rule allows 64 characters)."""


def host_device_id(hostname: str | None = None, machine: str | None = None) -> str:
    """The default device id: the host name (unsafe characters become '-') and a short stable
    hash of the machine (:func:`roller.base.machine.machine_hash`), e.g. ``raspberrypi-3f9a1c``:
    two Pis both called ``raspberrypi`` differ, and the id stays the same across restarts.
    At most :data:`MAX_DEVICE_ID_CHARS` characters, first a letter or digit."""
    tag = machine_hash() if machine is None else machine
    name = (hostname or socket.gethostname() or "roller").split(".")[0]
    room = MAX_DEVICE_ID_CHARS - len(tag) - 1
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:room] or "roller"
    return f"{safe}-{tag}" if tag else safe
