"""Which requests may reach the display: the Host and Origin rules (DNS rebinding, other sites).

* **Host**: every request must name the display by an IP address, ``localhost``, this
  machine's own name (``<hostname>`` and ``<hostname>.local``) or a name listed in
  ``[display] allowed_hosts``. A web page on another site that re-points its own name at the
  display's address (DNS rebinding) sends its own name as Host, and is refused.
* **Origin**: a state-changing request that carries an Origin (every browser sends one with a
  POST) must come from the page the display served: ``http://<the Host header>``. A page on
  another site cannot send commands, even to a phone's own display.

Each check returns None when the request may go on, else the reason in words.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from roller.base.errors import ConfigError
from roller.base.untrusted import shorten

HOST_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                       r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
"""A DNS host name (lower case, no trailing dot), matched in full."""
PORT = re.compile(r"[0-9]{1,5}")


def machine_names() -> tuple[str, ...]:
    """This machine's own names: its host name and the mDNS ``.local`` form of it."""
    name = socket.gethostname().lower().rstrip(".")
    if not HOST_NAME.fullmatch(name):
        return ()
    short = name.split(".")[0]
    return tuple(dict.fromkeys((name, short, f"{short}.local")))


class RequestGuard:
    """The Host rule (``allowed_names`` besides IP literals and localhost) and the Origin rule."""

    def __init__(self, allowed_names: Iterable[str] = (), *, key: str = "display.allowed_hosts"):
        names = {"localhost"}
        for raw in allowed_names:
            name = raw.lower().rstrip(".") if isinstance(raw, str) else raw
            if not isinstance(name, str) or not HOST_NAME.fullmatch(name):
                raise ConfigError(key, "host names such as 'roller.local' (letters, digits, "
                                       "'-' and '.')", raw)
            names.add(name)
        self.allowed_names = frozenset(names)

    def check_host(self, host: str | None) -> str | None:
        """None when ``host`` (the Host header) names the display acceptably, else why not."""
        if host is None or not host.strip():
            return "a Host header is required"
        name = host_name(host)
        if name is None:
            return f"the Host header {shorten(host)} is not a host[:port]"
        if name in self.allowed_names or _is_ip(name):
            return None
        return (f"the host name {shorten(name)} is not one of this display's names; open the "
                f"page by its IP address, localhost, or a name listed in [display] "
                f"allowed_hosts")

    def check_origin(self, origin: str | None, host: str) -> str | None:
        """None when a state-changing request's Origin (None: not sent, e.g. curl) is the page
        served as ``host``; else why not."""
        if origin is None:
            return None
        try:
            parts = urlsplit(origin.strip())
            netloc = parts.netloc.lower()
        except ValueError:
            return f"the Origin {shorten(origin)} is not a URL"
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or not netloc:
            return f"the Origin {shorten(origin)} is not the page this display served"
        if netloc != host.strip().lower():
            return (f"the request came from another site ({shorten(origin)}), not from the "
                    f"page at http://{shorten(host, quote=False)}")
        return None


def host_name(host: str) -> str | None:
    """The name or address part of a Host header (``[::1]:8080`` -> ``::1``), lower case;
    None when it is not ``host[:port]``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1:]
        if end < 0 or not _is_ip(name) or ":" not in name:
            return None
    else:
        name, sep, port = host.partition(":")
        rest = sep + port
    if rest and not (rest.startswith(":") and PORT.fullmatch(rest[1:])
                     and int(rest[1:]) <= 65535):
        return None
    name = name.rstrip(".") if not name.startswith("[") else name
    if not (_is_ip(name) or HOST_NAME.fullmatch(name)):
        return None
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
