"""Reading a TOML file we did not write: the config file and routine files.

Whatever the file holds, :func:`read_toml` returns a plain dict or raises one
:class:`~roller.base.errors.ConfigError` naming the file and the problem, in bounded time and
memory:

- only a regular file is read (a FIFO would block, /dev/zero would never end), at most
  :data:`MAX_FILE_BYTES`;
- the text must be UTF-8 and valid TOML (``tomllib``'s message carries the line and column);
- arrays and tables may nest at most :data:`MAX_DEPTH` levels (``tomllib`` recurses once per
  level and dies with RecursionError near 1000; our files need three).

:func:`shown` shortens a value quoted in an error message, and hides values of keys that look
like secrets, so neither a 100 kB string nor a misplaced password ends up in the journal.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from typing import Any

from roller.base.errors import ConfigError

MAX_FILE_BYTES = 1 << 20
"""Largest config or routine file read (ours are a few kB)."""

MAX_DEPTH = 16
"""Deepest nesting of tables and arrays accepted."""

MAX_SHOWN_CHARS = 80
"""Longest quotation of a value in an error message."""

_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|private", re.IGNORECASE)


def read_toml(path: str | os.PathLike[str], *, key: str, where: str | None = None,
              max_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """The TOML document in ``path``. ``key`` names the setting or option that pointed at the
    file (``--config``, ``coach.routine``) for errors about the file itself; ``where`` names
    the file in errors about its content (default: the path)."""
    name = os.fspath(path)
    where = name if where is None else where
    try:
        data = read_regular_file(path, key=key, what="TOML file", max_bytes=max_bytes)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.expected, exc.actual, where) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError("(file)", "a UTF-8 text file",
                          f"a byte that is not UTF-8 on line {line} ({exc.reason})",
                          where) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line L, column C)".
        raise ConfigError("(file syntax)", "valid TOML", str(exc), where) from None
    except RecursionError:
        raise ConfigError("(file syntax)", f"arrays and tables nested at most {MAX_DEPTH} "
                          "levels deep", "far deeper nesting", where) from None
    depth = nesting_depth(document)
    if depth > MAX_DEPTH:
        raise ConfigError("(file)", f"arrays and tables nested at most {MAX_DEPTH} levels deep",
                          f"{depth} levels", where)
    return document


def read_regular_file(path: str | os.PathLike[str], *, key: str, what: str,
                      max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; else a
    ConfigError naming ``key`` and ``what`` the file should be (a noun: "PEM file"). The
    check is made on the opened file (no race), which is opened non-blocking so a FIFO
    without a writer cannot hang us."""
    name = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ConfigError(key, f"an existing {what}", name) from None
    except ValueError:  # a NUL character in the path
        raise ConfigError(key, f"a path without NUL characters (of a {what})", name) from None
    except OSError as exc:
        raise ConfigError(key, f"a readable {what}",
                          f"{name} ({exc.strerror or exc.__class__.__name__})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(key, f"a regular {what}",
                              f"{name} ({file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise ConfigError(key, f"a {what} of at most {max_bytes} bytes",
                              f"{name} ({info.st_size} bytes)")
        os.set_blocking(fd, True)
        chunks = []
        total = 0
        while total <= max_bytes:  # the size may have changed since fstat
            chunk = os.read(fd, max_bytes + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise ConfigError(key, f"a {what} of at most {max_bytes} bytes", name)
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(key, f"a readable {what}",
                          f"{name} ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        os.close(fd)


def file_kind(mode: int) -> str:
    """'a directory', 'a FIFO', ... for an ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def nesting_depth(value: Any) -> int:
    """Levels of dicts and lists in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest  # deep enough to refuse; do not walk a huge tree to the bottom
        stack.extend((child, depth) for child in children)
    return deepest


class _Shown:
    """A value as an error message quotes it (its repr, shortened, or hidden)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


def shown(key: str, value: Any) -> Any:
    """``value`` as it may appear in a message about ``key``: hidden if the key looks like a
    secret (``mqtt.password``), shortened to :data:`MAX_SHOWN_CHARS` if long, else itself."""
    if isinstance(value, _Shown):
        return value
    leaf = key.rsplit(".", 1)[-1]
    if _SECRET_KEY.search(leaf) and not leaf.endswith("_file"):
        return hidden("the key looks like a secret")
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        return _Shown(f"{text[:MAX_SHOWN_CHARS]}... ({len(text)} characters)")
    return value


def hidden(reason: str) -> Any:
    """A stand-in for a value an error message must not quote; ``reason`` says why."""
    return _Shown(f"a value that is not shown ({reason})")


def concise(exc: ConfigError) -> ConfigError:
    """``exc`` with its quoted value passed through :func:`shown` (the same error if nothing
    needed hiding or shortening)."""
    actual = shown(exc.key, exc.actual)
    if actual is exc.actual:
        return exc
    return ConfigError(exc.key, exc.expected, actual, exc.where)


def check_path_text(key: str, value: str, where: str) -> None:
    """A path setting must not hold NUL (the OS refuses it with a bare ValueError)."""
    if "\0" in value:
        raise ConfigError(key, "a path without NUL characters", value, where)

