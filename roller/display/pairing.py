"""The display's pairing token: what a phone must show before its buttons may send commands.

Anyone on the LAN may *watch* the display; only a paired page may *change* anything
(``POST /api/cmd/<verb>``). Pairing is a secret link: ``roller display`` prints
``http://<address>:<port>/?token=<token>``, the page keeps the token (localStorage) and sends
it as ``Authorization: Bearer <token>``. The token lives in ``<state dir>/display-token``
(mode 0600) so a paired phone stays paired across restarts; ``roller display --new-token``
replaces it, which unpairs every phone.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_FILE_NAME = "display-token"
TOKEN_BYTES = 16
"""128 random bits: beyond guessing from the LAN, short enough for a link."""
TOKEN_RULE = re.compile(r"[A-Za-z0-9_-]{22,128}")
"""What a token file may hold (``secrets.token_urlsafe`` text); anything else is replaced."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class PairingToken:
    """One token, checked in constant time. ``path`` is where it is kept (None: memory only)."""

    def __init__(self, token: str, path: Path | None = None) -> None:
        if not TOKEN_RULE.fullmatch(token):
            raise ValueError("a pairing token must be 22-128 letters, digits, '_' or '-'")
        self.token = token
        self.path = path
        self._expected = token.encode()

    @classmethod
    def in_memory(cls) -> PairingToken:
        """A fresh token that is not kept: phones must pair again after a restart."""
        return cls(new_token())

    @classmethod
    def load_or_create(cls, state_dir: Path, *, rotate: bool = False) -> PairingToken:
        """The token kept in ``state_dir``; a new one when there is none, when the file does not
        hold a token, or when ``rotate``. When the file cannot be written (read-only or full
        disk), the new token is kept in memory only and a warning says so."""
        path = state_dir / TOKEN_FILE_NAME
        if not rotate:
            try:
                text = path.read_text(encoding="ascii").strip()
            except FileNotFoundError:
                text = None
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("display: cannot read the pairing token %s (%s); making a new one",
                            path, exc)
                text = None
            if text is not None:
                if TOKEN_RULE.fullmatch(text):
                    return cls(text, path)
                log.warning("display: %s does not hold a pairing token; making a new one "
                            "(paired phones must pair again)", path)
        token = new_token()
        try:
            _write_private(path, token + "\n")
        except OSError as exc:
            log.warning("display: cannot keep the pairing token in %s (%s); it lasts until the "
                        "display stops", path, exc.strerror or exc)
            return cls(token)
        return cls(token, path)

    def matches(self, presented: str | None) -> bool:
        """True when ``presented`` is the token (constant time: no timing hint to a guesser)."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self._expected)

    def link(self, base_url: str) -> str:
        """``base_url`` (ending in ``/``) with the token, the link a phone opens to pair."""
        return f"{base_url}?token={self.token}"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only, atomically (a crash leaves old or new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
