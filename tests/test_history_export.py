"""``roller history export``: FIT files that Garmin's own SDK decodes with intact CRCs and our
values, CSV with units in the column names, JSON in the MQTT session schema."""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest
from test_history import session

from roller.cli import main
from roller.coaching.history import History
from roller.coaching.history_export import DEV_FIELDS, fit_activity
from roller.contract.messages import SESSION_FIELDS, SUMMARY_FIELDS

garmin_fit_sdk = pytest.importorskip("garmin_fit_sdk")

WALL = 1_765_000_000.0  # 2025-12-06


def with_distance(summary, distances_m):
    """The summary with a distance per step, as a coach that reports one would give, and the
    session's distance their sum."""
    steps = tuple({**st, "distance_m": d} for st, d in zip(summary.steps, distances_m,
                                                           strict=True))
    return dataclasses.replace(summary, steps=steps, distance_m=sum(distances_m))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "h.sqlite3"
    with History(path) as h:
        h.record(with_distance(session(30, 25, wall=WALL), (0.9, 0.4)), device_id="mat1")
        h.record(dataclasses.replace(session(10, 12, wall=WALL + 86_400), distance_m=None),
                 device_id="mat1")  # no distance kept (a summary from before 0.3)
        h.record(session(20, 20, wall=WALL + 3 * 86_400), device_id="mat2")
    return path


def decode(data: bytes) -> dict:
    stream = garmin_fit_sdk.Stream.from_byte_array(bytearray(data))
    decoder = garmin_fit_sdk.Decoder(stream)
    assert decoder.is_fit() and decoder.check_integrity()  # header and file CRC intact
    messages, errors = garmin_fit_sdk.Decoder(
        garmin_fit_sdk.Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    return messages


def test_fit_round_trips_our_values(db: Path) -> None:
    with History(db) as h:
        detail = h.session(1)
    data = fit_activity(detail)
    m = decode(data)
    assert m["file_id_mesgs"][0]["type"] == "activity"
    (s,) = m["session_mesgs"]
    assert (s["sport"], s["sub_sport"]) == ("training", "flexibility_training")
    r = detail.session
    assert s["start_time"] == datetime.fromtimestamp(int(r.started_at),
                                                     s["start_time"].tzinfo)
    assert s["total_timer_time"] == pytest.approx(r.active_s, abs=0.001)
    assert s["total_elapsed_time"] == pytest.approx(r.duration_s, abs=0.001)
    names = {d["field_definition_number"]: (d["field_name"], d.get("units"))
             for d in m["field_description_mesgs"]}
    assert names[0] == ("strokes", "strokes") and names[4] == ("mean_speed", "m/s")
    dev = s["developer_fields"]
    assert dev[0] == r.strokes
    assert dev[1] == pytest.approx(1.3, rel=1e-6)  # distance: the session's (= the steps' sum)
    assert dev[3] == pytest.approx(r.too_fast_s, rel=1e-6)
    assert dev[4] == pytest.approx(r.mean_speed_m_s, rel=1e-6)
    assert dev[2] == pytest.approx(sum(st["holding_s"] for st in detail.steps), rel=1e-6)
    laps = m["lap_mesgs"]
    assert len(laps) == len(detail.steps) == s["num_laps"]
    for lap, st in zip(laps, detail.steps, strict=True):
        assert lap["sub_sport"] == "flexibility_training"
        assert lap["total_timer_time"] == pytest.approx(st["active_s"], abs=0.001)
        d = lap["developer_fields"]
        assert (d[5], d[6], d[7]) == (st["title"], st["muscle"], st["side"])
        assert d[0] == st["strokes"] and d[3] == pytest.approx(st["too_fast_s"], rel=1e-6)
        assert d[1] == pytest.approx(st["distance_m"], rel=1e-6)
    assert laps[0]["start_time"] == s["start_time"]
    assert laps[-1]["timestamp"] == s["timestamp"]
    assert m["activity_mesgs"][0]["num_sessions"] == 1
    assert len(data) < 2048
    assert len(DEV_FIELDS) == 8


def test_a_value_the_history_lacks_is_left_out_not_zero(db: Path) -> None:
    with History(db) as h:
        m = decode(fit_activity(h.session(2)))
    assert 1 not in m["session_mesgs"][0]["developer_fields"]  # no distance kept
    assert all(1 not in lap["developer_fields"] for lap in m["lap_mesgs"])


def test_a_damaged_fit_file_fails_the_crc(db: Path) -> None:
    with History(db) as h:
        data = bytearray(fit_activity(h.session(1)))
    data[60] ^= 0x01
    assert not garmin_fit_sdk.Decoder(garmin_fit_sdk.Stream.from_byte_array(data)) \
        .check_integrity()


def test_roller_history_export_fit_csv_json(db: Path, tmp_path: Path, capsys) -> None:
    one = tmp_path / "one.fit"
    assert main(["history", "export", "1", "--db", str(db), "--format", "fit", str(one)]) == 0
    assert decode(one.read_bytes())["session_mesgs"][0]["developer_fields"][0] > 0
    folder = tmp_path / "fits"
    assert main(["history", "--db", str(db), "export", "--format", "fit", str(folder)]) == 0
    files = sorted(folder.glob("*.fit"))
    assert len(files) == 3
    for f in files:
        decode(f.read_bytes())
    capsys.readouterr()
    since = datetime.fromtimestamp(WALL + 86_400).strftime("%Y-%m-%d")
    out = tmp_path / "s.csv"
    assert main(["history", "export", "--since", since, str(out), "--db", str(db)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["history_id"] for r in rows} == {"2", "3"}  # session 1 is before --since
    assert len(rows) == 4  # two steps each
    assert {"active_s", "mean_speed_m_s", "too_fast_s", "distance_m", "started_unix_s"} \
        <= set(rows[0])
    assert rows[0]["distance_m"] == ""  # not kept: empty, not 0
    js = tmp_path / "s.json"
    assert main(["history", "export", "--db", str(db), str(js)]) == 0
    data = json.loads(js.read_text())
    assert [d["history_id"] for d in data] == [1, 2, 3]  # oldest first
    for d in data:
        assert {f.name for f in SESSION_FIELDS} <= set(d)
        assert {f.name for f in SUMMARY_FIELDS} <= set(d["routine"])
        assert d["state"] == "finished"
    assert data[0]["distance_m"] == pytest.approx(1.3)
    assert data[1]["distance_m"] is None
    assert data[0]["routine"]["steps"][0]["distance_m"] == pytest.approx(0.9)


def test_export_says_what_is_wrong(db: Path, tmp_path: Path, capsys) -> None:
    assert main(["history", "export", "9", "--db", str(db), str(tmp_path / "x.json")]) == 1
    assert "no session 9" in capsys.readouterr().err
    assert main(["history", "export", "--db", str(db), str(tmp_path / "x.txt")]) == 1
    assert "give --format fit|csv|json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["history", "export", "--since", "2025-13-40", "--db", str(db), "x.csv"])
    assert usage.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["history", "export", "--since", "2099-01-01", "--db", str(db),
                 str(tmp_path / "x.csv")]) == 1
    assert "no sessions to export" in capsys.readouterr().err
