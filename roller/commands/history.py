"""``roller history``: list past sessions, or show one with its steps and left/right balance."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

HELP = "list past sessions, or show one (roller history show ID)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common_options(parser, None)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Intermixed)
    ls = sub.add_parser("list", help="list sessions, newest first (the default)")
    ls.add_argument("--limit", type=int, default=20, help="how many sessions (default 20)")
    ls.add_argument("--device", help="only this device id")
    show = sub.add_parser("show", help="show one session with its steps")
    show.add_argument("id", type=int, help="the session id from the list")
    export = sub.add_parser(
        "export", help="write sessions to a FIT, CSV or JSON file",
        description="Write one session (ID), the sessions since a date (--since), or all of "
                    "them to OUT: FIT activity files that Garmin Connect, Strava and other "
                    "training apps import, CSV with units in the column names, or JSON in the "
                    "MQTT session schema.")
    export.add_argument("id", type=int, nargs="?", help="the session id (default: all, or "
                                                        "those since --since)")
    export.add_argument("--since", metavar="DATE", type=_date_arg,
                        help="only sessions started on or after DATE (YYYY-MM-DD, local time)")
    export.add_argument("--format", choices=("fit", "csv", "json"),
                        help="file format (default: from OUT's suffix)")
    export.add_argument("out", metavar="OUT",
                        help="the file to write; with --format fit and several sessions, a "
                             "folder that gets one .fit file per session")
    for action in (ls, show, export):
        # `roller history show 3 --db F --json` as well as `--db F --json show 3`
        _common_options(action, argparse.SUPPRESS)
    parser.set_defaults(limit=20, device=None, demo=False)


class _Intermixed(argparse.ArgumentParser):
    """An action's parser that takes its options and positionals in any order
    (``export --format fit 3 OUT`` and ``export 3 --db F OUT`` alike): plain argparse gives
    the positionals only the first run of words between options."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._inside:  # parse_known_intermixed_args calls back here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def _common_options(parser: argparse.ArgumentParser, default: object) -> None:
    """The options every action takes, on the command and on each action, so they may come
    before or after the action (``default``: SUPPRESS on an action, so an option given before
    the action is not reset by the action's parser)."""
    parser.add_argument("--config", metavar="FILE", default=default,
                        help="config file naming the state directory (default: $ROLLER_CONFIG "
                             "or the built-in defaults)")
    parser.add_argument("--db", metavar="FILE", default=default,
                        help="the history file to read (default: from the config)")
    parser.add_argument("--demo", action="store_true",
                        default=argparse.SUPPRESS if default is argparse.SUPPRESS else False,
                        help="read the sessions of `roller demo` (kept in their own state "
                             "directory)")
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if default is argparse.SUPPRESS else False,
                        help="print JSON instead of a table")


def _date_arg(text: str) -> float:
    """``YYYY-MM-DD`` (local midnight) as Unix time [s]."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date as YYYY-MM-DD, got {text!r}") from None


SERVICE_STATE_DIR = Path("/var/lib/roller")
"""The service's state directory under systemd (``StateDirectory=roller``)."""

DEMO_STATE_SUBDIR = "demo"
"""``roller demo`` keeps its state (and so its history) in ``<state dir>/demo``, away from a
real roller's (see :mod:`roller.commands.demo`)."""


def demo_history_path() -> Path:
    """Where ``roller demo`` stores its sessions (the default history file of its state dir)."""
    from roller.base.paths import default_state_dir
    from roller.coaching.history import HistorySettings

    return HistorySettings().path(default_state_dir() / DEMO_STATE_SUBDIR)


def history_path(args: argparse.Namespace, service_state_dir: Path = SERVICE_STATE_DIR) -> Path:
    """The history file: ``--db``, ``--demo``, else the config's ``[history] file`` in its
    state dir.

    A user's shell has no ``$STATE_DIRECTORY``, so on a Pi the config's default state dir is
    the user's own; when that holds no history but the service's (/var/lib/roller) does and
    the config does not name a state dir, the service's is read.
    """
    if args.db:
        return Path(args.db)
    if getattr(args, "demo", False):
        return demo_history_path()
    from roller.service.config import load_config

    config = load_config(args.config)
    path = config.history.path(config.state_path)
    if not path.exists() and not config.state_dir:
        service = config.history.path(service_state_dir)
        if service.exists():
            return service
    return path


def find_history(args: argparse.Namespace, service_state_dir: Path = SERVICE_STATE_DIR,
                 ) -> tuple[Path, str | None]:
    """The history to read and a note for stderr (or None): with no ``--db``/``--demo`` and
    no history of one's own yet, the demo's sessions are read and the note says so; when both
    exist, the note says where the demo's are."""
    path = history_path(args, service_state_dir)
    if args.db or getattr(args, "demo", False):
        return path, None
    demo = demo_history_path()
    if demo == path or not demo.exists():
        return path, None
    if not path.exists():
        return demo, (f"no sessions of your own yet ({path} does not exist); showing the "
                      f"sessions of `roller demo` from {demo}")
    return path, f"the sessions of `roller demo` are in {demo}: roller history --demo"


def run(args: argparse.Namespace) -> int:
    try:
        return show(args)
    except PermissionError as exc:  # the service's /var/lib/roller is for group roller
        print(no_access_message(exc), file=sys.stderr)
        return 1


def no_access_message(exc: PermissionError) -> str:
    """One line for a user who may not read the history: which file, and the group to join."""
    where = exc.filename or "the session history"
    return (f"roller history: no permission to read {where}: the service's history is for the "
            "roller group; ask an admin to run `sudo adduser $USER roller`, then log in again")


def show(args: argparse.Namespace) -> int:
    from roller.coaching.history import History

    path, note = find_history(args)
    if note:
        print(f"roller history: {note}", file=sys.stderr)
    if not path.exists():
        print(f"no sessions yet ({path} does not exist)", file=sys.stderr)
        if args.action in ("show", "export"):
            return 1
        if args.json:
            print("[]")
        return 0
    with History(path) as history:
        if args.action == "export":
            from roller.coaching.history_export import export_command

            return export_command(history, session_id=args.id, since_unix_s=args.since,
                                  fmt=args.format, out=Path(args.out))
        if args.action == "show":
            try:
                detail = history.session(args.id)
            except KeyError:
                print(f"roller history: no session {args.id} in {path}", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(detail.to_dict(), indent=2))
            else:
                print(format_detail(detail))
            return 0
        rows = history.sessions(limit=args.limit, device_id=args.device)
        if args.json:
            print(json.dumps([dict(r.__dict__, left_share=r.left_share) for r in rows],
                             indent=2))
        elif not rows:
            print(f"no sessions yet in {path}")
        else:
            print(format_list(rows))
    return 0


def clock_time(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration in s."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def date(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).strftime("%Y-%m-%d %H:%M")


def balance_text(left_s: float, right_s: float) -> str:
    """``left 48% / right 52% (even)``; a side is called out when it got over 60%."""
    total = left_s + right_s
    if total <= 0:
        return "no one-sided steps"
    left = left_s / total
    if abs(left - 0.5) <= 0.1:
        verdict = "even"
    else:
        verdict = "more on the left" if left > 0.5 else "more on the right"
    return f"left {left:.0%} / right {1 - left:.0%} ({verdict})"


def cm_s(speed_m_s: float | None) -> str:
    return "-" if speed_m_s is None else f"{speed_m_s * 100:.1f} cm/s"


def format_list(rows) -> str:
    header = (f"{'id':>4}  {'date':16}  {'routine':18}  {'result':9}  {'active':>7}  "
              f"{'left/right':>11}  {'strokes':>7}  too fast")
    lines = [header]
    for r in rows:
        total = r.left_s + r.right_s
        lr = f"{r.left_s / total:.0%}/{r.right_s / total:.0%}" if total > 0 else "-"
        lines.append(f"{r.id:>4}  {date(r.started_at):16}  {r.routine[:18]:18}  "
                     f"{r.end_reason:9}  {clock_time(r.active_s):>7}  {lr:>11}  "
                     f"{r.strokes:>7}  {r.too_fast_count}x ({r.too_fast_s:.1f} s)")
    return "\n".join(lines)


def format_detail(detail) -> str:
    r = detail.session
    lines = [
        f"Session {r.id}: {r.routine_title} on {r.device_id}, {date(r.started_at)}, "
        f"{clock_time(r.duration_s)} long, {r.end_reason}",
        f"Active {clock_time(r.active_s)}: left {clock_time(r.left_s)}, right "
        f"{clock_time(r.right_s)}, middle {clock_time(r.none_s)}",
        f"Balance: {balance_text(r.left_s, r.right_s)}",
        f"Strokes {r.strokes}; speed mean {cm_s(r.mean_speed_m_s)}, median "
        f"{cm_s(r.median_speed_m_s)}, peak {cm_s(r.peak_speed_m_s)}",
        f"Too fast {r.too_fast_count} times, {r.too_fast_s:.1f} s in all",
        f"Holds {r.holds}, longest {r.longest_hold_s:.0f} s",
    ]
    if r.advice:
        lines.append(f"Advice given: {r.advice}")
    lines.append("")
    lines.append(f"  {'step':30}  {'side':5}  {'active / target':>15}  {'strokes':>7}  "
                 f"{'holds':>5}  {'too fast':>8}  status")
    for st in detail.steps:
        status = "done" if st["completed"] else ("skipped" if st["skipped"] else "not reached")
        active = f"{st['active_s']:.0f} / {st['target_s']:.0f} s"
        lines.append(f"  {st['title'][:30]:30}  {st['side']:5}  {active:>15}  {st['strokes']:>7}  "
                     f"{st['holds']:>5}  {st['too_fast_count']:>8}  {status}")
    return "\n".join(lines)
