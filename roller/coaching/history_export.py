"""Stored sessions out to the formats other apps read: FIT activity files, CSV and JSON.

* **FIT** (Garmin's Flexible and Interoperable Data Transfer protocol, what Garmin Connect,
  Strava, TrainingPeaks and intervals.icu import): one activity file per session, sport
  ``training`` / sub-sport ``flexibility_training``, one lap per routine step (a muscle on one
  side), the session and the activity. Our own figures go in developer fields (declared in the
  file, so any FIT reader shows them with their names and units): strokes, distance rolled,
  hold time, time too fast and mean speed, on each lap and on the session; each lap also
  names its step, muscle and side. Encoded with Garmin's own SDK (``garmin-fit-sdk``, the
  ``export`` extra), which writes the header and file CRCs.
* **CSV**: one row per step, the session's columns repeated on each, units in the column
  names (``active_s``, ``mean_speed_m_s``) -- what a spreadsheet wants.
* **JSON**: a list of sessions, each shaped as the retained MQTT ``session`` payload
  (:func:`roller.contract.messages.session_payload`, state ``finished``, the coach's summary
  under ``routine``) plus ``device_id`` and ``history_id``. Figures the history does not keep
  are null: ``session_id`` (the MQTT one), ``running_s``, and ``distance_m`` where the summary
  carried none.

The history keeps each step's active time but not when it began, so the laps of a FIT file
are laid end to end from the session's start on the activity's timer (FIT's ``total_timer_time``
is time doing the activity, which is what ``active_s`` is); the session's elapsed time is
the real start-to-end.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from roller.base.errors import RollerError
from roller.coaching.records import doses
from roller.contract.messages import session_payload

FORMATS = ("fit", "csv", "json")

FIT_APPLICATION_ID = bytes.fromhex("5f3c9d2e8a7b4c61b0e4f1a2c3d4e5f6")
"""Our developer application id (a UUID chosen once): a FIT reader ties the developer fields
to it."""

FIT_MESG = {"file_id": 0, "session": 18, "lap": 19, "event": 21, "activity": 34,
            "field_description": 206, "developer_data_id": 207}
"""FIT global message numbers (FIT profile)."""

FIT_UINT16, FIT_STRING, FIT_FLOAT32 = 132, 7, 136
"""FIT base types (``fit_base_type``) of our developer fields."""


class DevField:
    """One developer field: its number, FIT base type, name, units and where it comes from."""

    def __init__(self, number: int, base_type: int, name: str, units: str, key: str) -> None:
        self.number = number
        self.base_type = base_type
        self.name = name
        self.units = units
        self.key = key
        """The history column (step or session) it carries."""


DEV_FIELDS = (
    DevField(0, FIT_UINT16, "strokes", "strokes", "strokes"),
    DevField(1, FIT_FLOAT32, "roll_distance", "m", "distance_m"),
    DevField(2, FIT_FLOAT32, "hold_time", "s", "holding_s"),
    DevField(3, FIT_FLOAT32, "time_too_fast", "s", "too_fast_s"),
    DevField(4, FIT_FLOAT32, "mean_speed", "m/s", "mean_speed_m_s"),
    DevField(5, FIT_STRING, "step", "", "title"),
    DevField(6, FIT_STRING, "muscle", "", "muscle"),
    DevField(7, FIT_STRING, "side", "", "side"),
)
"""Developer fields by number. A value the history does not have (no strokes: no mean
speed; no distance kept) is left out of that message rather than written as a made-up 0."""

LAP_FIELDS = tuple(f.number for f in DEV_FIELDS)
SESSION_FIELDS_FIT = (0, 1, 2, 3, 4)


class ExportError(RollerError, ValueError):
    """Nothing to export, or the output cannot be written."""


def _fit_sdk() -> Any:
    try:
        import garmin_fit_sdk
    except ImportError:
        raise ExportError(
            "FIT export needs Garmin's FIT SDK: pip install 'roller-companion[export]' "
            "(or .venv/bin/pip install garmin-fit-sdk)") from None
    return garmin_fit_sdk


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def fit_activity(detail: Any) -> bytes:
    """One stored session (:class:`~roller.coaching.history.SessionDetail`) as a FIT activity
    file: the bytes, CRCs included."""
    sdk = _fit_sdk()
    r = detail.session
    dev_id = {"mesg_num": FIT_MESG["developer_data_id"], "developer_data_index": 0,
              "application_id": list(FIT_APPLICATION_ID), "application_version": 1}
    descriptions = {
        f.number: {"developer_data_id_mesg": dev_id, "field_description_mesg": {
            "mesg_num": FIT_MESG["field_description"], "developer_data_index": 0,
            "field_definition_number": f.number, "fit_base_type_id": f.base_type,
            "field_name": f.name, **({"units": f.units} if f.units else {})}}
        for f in DEV_FIELDS}
    enc = sdk.Encoder(descriptions)
    start = _utc(r.started_at)
    end = _utc(max(r.ended_at, r.started_at))
    enc.write_mesg({"mesg_num": FIT_MESG["file_id"], "type": "activity",
                    "manufacturer": "development", "product": 1,
                    "serial_number": _serial(r.device_id), "time_created": start})
    enc.write_mesg(dev_id)
    for d in descriptions.values():
        enc.write_mesg(d["field_description_mesg"])
    enc.write_mesg({"mesg_num": FIT_MESG["event"], "timestamp": start, "event": "timer",
                    "event_type": "start"})
    sport = {"sport": "training", "sub_sport": "flexibility_training"}
    laps = [st for st in detail.steps if st["active_s"] > 0] or list(detail.steps[:1])
    t = start
    for i, st in enumerate(laps):
        active = float(st["active_s"])
        lap_end = min(t + timedelta(seconds=active), end) if i < len(laps) - 1 else end
        enc.write_mesg({"mesg_num": FIT_MESG["lap"], "message_index": i, "start_time": t,
                        "timestamp": lap_end, "total_elapsed_time": active,
                        "total_timer_time": active, "event": "lap", "event_type": "stop",
                        "lap_trigger": "manual", **sport,
                        "developer_fields": _dev_values(st, LAP_FIELDS)})
        t = lap_end
    holding_s = sum(float(st["holding_s"]) for st in detail.steps)
    session = {"strokes": r.strokes, "distance_m": r.distance_m, "holding_s": holding_s,
               "too_fast_s": r.too_fast_s, "mean_speed_m_s": r.mean_speed_m_s}
    enc.write_mesg({"mesg_num": FIT_MESG["event"], "timestamp": end, "event": "timer",
                    "event_type": "stop_all"})
    enc.write_mesg({"mesg_num": FIT_MESG["session"], "message_index": 0, "start_time": start,
                    "timestamp": end, "total_elapsed_time": float(r.duration_s),
                    "total_timer_time": float(r.active_s), "first_lap_index": 0,
                    "num_laps": len(laps), "event": "session", "event_type": "stop",
                    "trigger": "activity_end", **sport,
                    "developer_fields": _dev_values(session, SESSION_FIELDS_FIT)})
    local = end.astimezone()
    offset = local.utcoffset() or timedelta(0)
    fit_epoch = datetime(1989, 12, 31, tzinfo=UTC)
    enc.write_mesg({"mesg_num": FIT_MESG["activity"], "timestamp": end, "num_sessions": 1,
                    "type": "manual", "event": "activity", "event_type": "stop",
                    "total_timer_time": float(r.active_s),
                    "local_timestamp": int((end - fit_epoch + offset).total_seconds())})
    return bytes(enc.close())


def _dev_values(source: dict[str, Any], numbers: Sequence[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for f in DEV_FIELDS:
        if f.number not in numbers:
            continue
        value = source.get(f.key)
        if value is None or (f.base_type == FIT_STRING and not value):
            continue
        out[f.number] = int(value) if f.base_type == FIT_UINT16 else \
            str(value) if f.base_type == FIT_STRING else float(value)
    return out


def _serial(device_id: str) -> int:
    """A stable non-zero 32-bit serial number for a device id (FIT wants one per device)."""
    import zlib

    return zlib.crc32(device_id.encode()) or 1


# -- CSV and JSON ---------------------------------------------------------------------------

CSV_SESSION_COLUMNS = (
    ("history_id", "id"), ("device_id", "device_id"), ("routine", "routine"),
    ("started_unix_s", "started_at"), ("started_local", None), ("ended_unix_s", "ended_at"),
    ("session_duration_s", "duration_s"), ("end_reason", "end_reason"),
    ("session_active_s", "active_s"))
CSV_STEP_COLUMNS = (
    "step_position", "step_id", "step_title", "muscle", "side", "prop", "target_s",
    "active_s", "rolling_s", "holding_s", "strokes", "holds", "longest_hold_s",
    "too_fast_count", "too_fast_s", "mean_speed_m_s", "peak_speed_m_s", "distance_m",
    "completed", "skipped")


def csv_text(details: Sequence[Any]) -> str:
    """One row per step of each session, oldest session first; the session's columns repeat
    on each of its rows. Empty cells where the history has no value."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([name for name, _ in CSV_SESSION_COLUMNS] + list(CSV_STEP_COLUMNS))
    for detail in details:
        r = detail.session
        head = []
        for _name, attr in CSV_SESSION_COLUMNS:
            if attr is None:  # started_local
                head.append(datetime.fromtimestamp(r.started_at).isoformat(timespec="seconds"))
            else:
                head.append(getattr(r, attr))
        for st in detail.steps:
            row = {**st, "step_position": st["position"], "step_title": st["title"]}
            w.writerow(head + ["" if row.get(c) is None else row[c] for c in CSV_STEP_COLUMNS])
    return buf.getvalue()


def session_json(detail: Any) -> dict[str, Any]:
    """A stored session as the MQTT ``session`` payload of a finished session, plus
    ``device_id`` and ``history_id``."""
    r = detail.session
    steps = []
    for st in detail.steps:
        steps.append({"id": st["step_id"], "title": st["title"], "muscle": st["muscle"],
                      "side": st["side"], "prop": st["prop"], "target_s": st["target_s"],
                      "active_s": st["active_s"], "rolling_s": st["rolling_s"],
                      "holding_s": st["holding_s"], "strokes": st["strokes"],
                      "holds_s": list(st["holds_s"]), "longest_hold_s": st["longest_hold_s"],
                      "too_fast_count": st["too_fast_count"], "too_fast_s": st["too_fast_s"],
                      "mean_speed_m_s": st["mean_speed_m_s"],
                      "peak_speed_m_s": st["peak_speed_m_s"],
                      "distance_m": st.get("distance_m"),
                      "completed": bool(st["completed"]), "skipped": bool(st["skipped"])})
    summary = {"routine": r.routine, "routine_title": r.routine_title,
               "started_unix_s": r.started_at, "ended_unix_s": r.ended_at,
               "duration_s": r.duration_s, "end_reason": r.end_reason, "active_s": r.active_s,
               "sides_s": {"left": r.left_s, "right": r.right_s, "none": r.none_s},
               "left_share": r.left_share, "strokes": r.strokes, "holds": r.holds,
               "longest_hold_s": r.longest_hold_s, "too_fast_count": r.too_fast_count,
               "too_fast_s": r.too_fast_s, "mean_speed_m_s": r.mean_speed_m_s,
               "median_speed_m_s": r.median_speed_m_s, "peak_speed_m_s": r.peak_speed_m_s,
               "advice": r.advice, "distance_m": r.distance_m, "steps": steps,
               "doses": doses(steps)}
    body = session_payload(
        session_id=None, state="finished", end_reason=r.end_reason,
        started_unix_s=r.started_at, ended_unix_s=r.ended_at, active_s=r.active_s,
        running_s=0.0, strokes=r.strokes, distance_m=r.distance_m or 0.0, holds=r.holds,
        hold_time_s=sum(sum(st["holds_s"]) for st in detail.steps),
        too_fast_count=r.too_fast_count, too_fast_s=r.too_fast_s,
        mean_speed_m_s=r.mean_speed_m_s, median_speed_m_s=r.median_speed_m_s,
        peak_speed_m_s=r.peak_speed_m_s or 0.0, routine=summary)
    body["running_s"] = None  # the history keeps no running time (pauses are not stored)
    body["distance_m"] = r.distance_m
    body["last_error"] = None  # a refused command is not history
    return {"device_id": r.device_id, "history_id": r.id, **body}


# -- the command ----------------------------------------------------------------------------

def select(history: Any, *, session_id: int | None, since_unix_s: float | None) -> list[Any]:
    """The sessions to export, oldest first: one by id, those since a time, or all."""
    if session_id is not None:
        try:
            return [history.session(session_id)]
        except KeyError:
            raise ExportError(f"no session {session_id} in {history.path}") from None
    rows = history.sessions(limit=None, since_unix_s=since_unix_s)
    return [history.session(r.id) for r in reversed(rows)]


def format_of(out: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = out.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise ExportError(f"{out}: cannot tell the format from the name; give --format "
                      f"{'|'.join(FORMATS)}")


def export_command(history: Any, *, session_id: int | None, since_unix_s: float | None,
                   fmt: str | None, out: Path) -> int:
    """``roller history export``: write the file(s), say what was written on stdout."""
    fmt = format_of(out, fmt)
    details = select(history, session_id=session_id, since_unix_s=since_unix_s)
    if not details:
        print(f"roller history: no sessions to export from {history.path}", file=sys.stderr)
        return 1
    try:
        if fmt == "fit":
            written = _write_fit(details, out)
        else:
            text = csv_text(details) if fmt == "csv" else \
                json.dumps([session_json(d) for d in details], indent=2) + "\n"
            out.write_text(text, encoding="utf-8")
            written = [out]
    except OSError as exc:
        raise ExportError(f"{out}: cannot write: {exc.strerror or exc}") from None
    for path in written:
        print(path)
    print(f"roller history: exported {len(details)} session(s) as {fmt.upper()}",
          file=sys.stderr)
    return 0


def _write_fit(details: Sequence[Any], out: Path) -> list[Path]:
    """One session to ``out`` (a file), several into ``out`` (a folder, created)."""
    if len(details) == 1 and not out.is_dir():
        out.write_bytes(fit_activity(details[0]))
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for d in details:
        r = d.session
        stamp = datetime.fromtimestamp(r.started_at).strftime("%Y%m%d-%H%M")
        path = out / f"roller-{stamp}-{r.id}.fit"
        path.write_bytes(fit_activity(d))
        written.append(path)
    return written
