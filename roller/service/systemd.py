"""sd_notify without a dependency: tell systemd we are ready, alive, degraded or stopping.

systemd passes ``$NOTIFY_SOCKET`` (a Unix datagram socket; ``@`` means the abstract namespace)
to a ``Type=notify`` service and ``$WATCHDOG_USEC`` when ``WatchdogSec=`` is set. Outside systemd
both are absent and every call is a cheap no-op, so the service code needs no special case.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roller.mqtt.publisher import Publisher


class Notifier:
    """Sends ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1`` to systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and mine else None
        """Half the watchdog timeout [s] (how often to ping), or None without a watchdog."""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when not under systemd or it fails."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")


def broker_status(publisher: Publisher) -> str:
    """The broker link in a ``STATUS=`` line: ``running``, or ``degraded:`` with the cause
    (connection refused, unknown host, TLS, login refused; a client rebuilt because it died,
    hung or failed in a callback), so ``systemctl status`` says what to fix."""
    if not publisher.connected:
        cause = publisher.link_problem or (f"{publisher.settings.host}:"
                                           f"{publisher.settings.port} unreachable")
        return f"degraded: broker {cause}, events kept in the outbox"
    failure = publisher.client_failure
    if failure is not None:
        return f"running (MQTT client rebuilt: {failure})"
    return "running"
