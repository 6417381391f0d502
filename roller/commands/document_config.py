"""``config/roller.toml``: every section and key of both processes, commented out, with its
default and unit.

The service (:class:`roller.service.config.RollerConfig`) and the display
(:class:`roller.display.config.DisplayConfig`) each declare the sections they read; this puts
them together in the order of :data:`roller.base.config_file.SECTIONS`, each section from the
class that reads it in full. It is not a ``roller`` subcommand: regenerate the file with
``python -m roller.commands.document_config > config/roller.toml`` (a test checks it).
"""

from __future__ import annotations

import re
import sys
import textwrap
from typing import Any

from roller.base.config_file import SECTIONS, STATE_DIR_DOC, section_classes
from roller.base.settings import describe
from roller.display.config import DisplayConfig
from roller.service.config import RollerConfig

PROCESS_CONFIGS: tuple[type, ...] = (RollerConfig, DisplayConfig)
"""Each process's config class: every section is read in full by one of them."""


def full_sections() -> dict[str, type]:
    """name -> the settings class that reads section ``[name]`` in full, in document order.
    Raises LookupError for a section no process reads in full."""
    found: dict[str, type] = {}
    for config_cls in PROCESS_CONFIGS:
        for name, cls in section_classes(config_cls, partial=False).items():
            found.setdefault(name, cls)
    missing = [name for name in SECTIONS if name not in found]
    if missing:
        raise LookupError(f"no process reads [{missing[0]}] in full")
    return {name: found[name] for name in SECTIONS}


def document() -> str:
    """The text of ``config/roller.toml``."""
    out = [
        "# roller companion configuration (roller run --config FILE, or $ROLLER_CONFIG).",
        "# Every key is optional: a commented key shows its built-in default. Uncomment to change.",
        "# Units are in brackets. Unknown keys, wrong types and out-of-range values stop the",
        "# service with exit status 78 and a message naming the key.",
        "# Regenerate after adding a setting:",
        "#   python -m roller.commands.document_config > config/roller.toml",
        "",
        *_comment(STATE_DIR_DOC),
        '# state_dir = ""',
    ]
    for name, cls in full_sections().items():
        out.append("")
        out.extend(_section_lines(name, cls))
    return "\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '""'


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="#   ")


def _section_lines(name: str, cls: type) -> list[str]:
    doc = (cls.__doc__ or "").strip().splitlines()
    title = re.sub(r"^Config section ``\[\w+\]``:?\s*", "", doc[0]) if doc else ""
    lines = [*_comment(f"[{name}] {title}".strip()), f"[{name}]"]
    for key, type_name, default, text in describe(cls):
        lines.extend(_comment(f"{text} ({type_name})"))
        if default is None:
            lines.append(f"# {key} =     (unset by default)")
        else:
            lines.append(f"# {key} = {_toml_value(default)}")
    return lines


if __name__ == "__main__":
    sys.stdout.write(document())
