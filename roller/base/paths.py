"""Where roller companion keeps its files.

The state directory holds the calibration, the MQTT outbox and the session history. Under
systemd it is ``$STATE_DIRECTORY`` (from ``StateDirectory=roller``, i.e. /var/lib/roller); for a
user on a laptop ``$XDG_STATE_HOME/roller`` (default ~/.local/state/roller). The config file
may override it with ``state_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_ENV = "ROLLER_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""

REPO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
"""The checkout's config/ folder (present for source and editable installs)."""


def default_state_dir() -> Path:
    """The state directory to use when the config does not name one."""
    systemd = os.environ.get("STATE_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "roller"


def ensure_dir(path: Path, *, key: str = "state_dir") -> Path:
    """Create ``path`` (and parents) if needed and return it. A path that cannot be a
    directory (a file is in the way, a NUL character, no permission) raises
    :class:`~roller.base.errors.ConfigError` naming ``key``, the setting it came from."""
    from roller.base.errors import ConfigError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(key, "a directory that exists or can be created",
                          f"{path} ({reason})") from None
    if not path.is_dir():
        raise ConfigError(key, "a directory", f"{path} (not a directory)")
    return path
