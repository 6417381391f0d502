"""``roller analyze`` on real phone exports and on what real exports do (issue 16 item 5).

The three real exports in ``../shared/real-phone`` (or ``$ROLLER_REAL_PHONE``) are read as
they are and rewritten into the variants real exports come in: iOS and Android spellings,
``;``/tab/comma, zipped, the ``Raw Data.csv`` of two built-in experiments given together,
``Accelerometer.csv`` + ``Gravity.csv`` without ``TotalAcceleration.csv``, 0-byte files,
streams that stop. Refusals (gravity removed, no gyroscope, no units, damaged or hostile zips,
non-finite values) are one line with exit status 2.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from roller.cli import main
from roller.recordings import phone_export


def real_phone_dir() -> Path | None:
    env = os.environ.get("ROLLER_REAL_PHONE")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for parent in Path(__file__).resolve().parents[1].parents[:2]:
        if (parent / "shared" / "real-phone").is_dir():
            return parent / "shared" / "real-phone"
    return None


REAL = real_phone_dir()
pytestmark = pytest.mark.skipif(REAL is None, reason="real phone exports not found")
ANDROID = "phyphox-android-moto-500hz"
IOS = "phyphox-ios-iphone12-semicolon"
SL = "sensorlogger-android-s24"


def analyse(capsys, path) -> tuple[int, dict | None, str]:
    rc = main(["analyze", str(path), "--json"])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out.strip() else None), err


def figures(result: dict) -> tuple[int, int, int, float]:
    return (len(result["strokes"]), len(result["holds"]), len(result["too_fast"]),
            round(sum(abs(s["distance_m"]) for s in result["strokes"]), 3))


def copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(REAL / name, tmp_path / name))


def zipped(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, arcname=prefix + str(p.relative_to(folder)))
    return archive


@pytest.mark.parametrize("name", [ANDROID, IOS, SL])
def test_every_real_export_is_read_as_it_is_and_zipped(tmp_path, capsys, name):
    rc, result, err = analyse(capsys, REAL / name)
    assert rc == 0, err
    assert result["samples"] > 3000 and figures(result)[0] > 0
    rc, from_zip, err = analyse(capsys, zipped(REAL / name, tmp_path / f"{name}.zip"))
    assert rc == 0, err
    assert figures(from_zip) == figures(result)
    # one of its files names the export too
    rc, one, err = analyse(capsys, REAL / name / "Gyroscope.csv")
    assert rc == 0 and figures(one) == figures(result)


def rewrite(path: Path, *, delimiter: str | None = None, header=None, decimal_comma=False):
    lines = path.read_text(encoding="utf-8").splitlines()
    old = max(",;\t", key=lines[0].count)
    rows = [line.split(old) for line in lines]
    if header is not None:
        rows[0] = header
    new = delimiter or old
    out = []
    for i, row in enumerate(rows):
        if i and decimal_comma:
            row = [c.replace(".", ",") for c in row]
        out.append(new.join(row))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("delimiter", "decimal_comma"), [(",", False), ("\t", False),
                                                          (";", True)])
def test_ios_and_android_spellings_and_separators_read_alike(tmp_path, capsys, delimiter,
                                                             decimal_comma):
    _, want, _ = analyse(capsys, REAL / IOS)
    folder = copy(tmp_path, IOS)
    for f in ("Accelerometer.csv", "Gyroscope.csv"):
        rewrite(folder / f, delimiter=delimiter, decimal_comma=decimal_comma)
    android = copy(tmp_path / "a", IOS)  # the same data with Android's column names
    rewrite(android / "Accelerometer.csv", header=[
        '"Time (s)"', '"Acceleration x (m/s^2)"', '"Acceleration y (m/s^2)"',
        '"Acceleration z (m/s^2)"'])
    rewrite(android / "Gyroscope.csv", header=[
        '"Time (s)"', '"Gyroscope x (rad/s)"', '"Gyroscope y (rad/s)"', '"Gyroscope z (rad/s)"'])
    for path in (folder, android):
        rc, got, err = analyse(capsys, path)
        assert rc == 0, err
        assert figures(got) == figures(want)


def builtin_export(folder: Path, archive: Path, csv_name: str, raw: Path, absolute: str,
                   time_src: Path) -> Path:
    """A built-in single-sensor experiment's zip: ``Raw Data.csv`` (+ Absolute) and meta."""
    lines = raw.read_text().splitlines()
    delim = max(",;\t", key=lines[0].count)
    out = [lines[0] + f'{delim}"{absolute}"']
    for line in lines[1:]:
        v = [float(c) for c in line.split(delim)]
        out.append(line + f"{delim}{np.linalg.norm(v[1:4]):.9E}")
    folder.mkdir(parents=True)
    (folder / csv_name).write_text("\n".join(out) + "\n")
    (folder / "meta").mkdir()
    shutil.copy(time_src, folder / "meta" / "time.csv")
    return zipped(folder, archive)


def test_raw_data_of_two_builtin_experiments_given_together(tmp_path, capsys):
    _, want, _ = analyse(capsys, REAL / ANDROID)
    both = tmp_path / "exports"
    both.mkdir()
    src = REAL / ANDROID
    builtin_export(tmp_path / "acc", both / "Acceleration with g 2024-09-17 14-03-17.zip",
                   "Raw Data.csv", src / "Accelerometer.csv", "Absolute acceleration (m/s^2)",
                   src / "meta" / "time.csv")
    builtin_export(tmp_path / "gyr", both / "Gyroscope rotation rate 2024-09-17 14-03-17.zip",
                   "Raw Data.csv", src / "Gyroscope.csv", "Absolute (rad/s)",
                   src / "meta" / "time.csv")
    rc, got, err = analyse(capsys, both)
    assert rc == 0, err
    assert figures(got) == figures(want)
    # one built-in export alone has no gyroscope (or no accelerometer): said so
    rc, _, err = analyse(capsys, both / "Acceleration with g 2024-09-17 14-03-17.zip")
    assert rc == 2 and "no gyroscope" in err and "Gyroscope" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("name", ["Linear Acceleration.csv", "Linear Accelerometer.csv",
                                  "without g"])
def test_gravity_removed_is_refused_with_what_to_record(tmp_path, capsys, name):
    folder = copy(tmp_path, ANDROID)
    if name == "without g":  # the Raw Data.csv of "Acceleration without g", given with a gyro
        both = tmp_path / "exports"
        both.mkdir()
        builtin_export(tmp_path / "lin", both / "Acceleration without g 2024.zip",
                       "Raw Data.csv", folder / "Accelerometer.csv",
                       "Absolute acceleration (m/s^2)", folder / "meta" / "time.csv")
        builtin_export(tmp_path / "gyr", both / "Gyroscope 2024.zip", "Raw Data.csv",
                       folder / "Gyroscope.csv", "Absolute (rad/s)", folder / "meta" / "time.csv")
        path = both
    else:
        (folder / "Accelerometer.csv").rename(folder / name)
        path = folder
    rc, result, err = analyse(capsys, path)
    assert rc == 2 and result is None
    assert "gravity removed" in err and "Acceleration with g" in err
    assert err.count("\n") == 1


def test_accelerometer_plus_gravity_stands_in_for_total_acceleration(tmp_path, capsys):
    _, want, _ = analyse(capsys, REAL / SL)
    folder = copy(tmp_path, SL)
    (folder / "TotalAcceleration.csv").unlink()
    rc, got, err = analyse(capsys, folder)
    assert rc == 0, err
    w, g = figures(want), figures(got)
    # the phone's own sum differs a little from ours (the S24's first linear samples are 0):
    # the same strokes and fast passes, a hold at most split differently
    assert (g[0], g[2]) == (w[0], w[2]) and abs(g[1] - w[1]) <= 1
    assert g[3] == pytest.approx(w[3], rel=0.05)
    (folder / "Gravity.csv").unlink()
    rc, _, err = analyse(capsys, folder)
    assert rc == 2 and "gravity removed" in err and "Total Acceleration" in err


def test_zero_byte_files_and_a_stream_that_stops(tmp_path, capsys):
    folder = copy(tmp_path, SL)
    (folder / "Magnetometer.csv").write_bytes(b"")       # 0-byte files beside the data
    (folder / "Microphone.mp4").write_bytes(b"\0" * 100)
    rc, _, err = analyse(capsys, folder)
    assert rc == 0, err
    # the accelerometer stops for 20 s while the gyro goes on (an iOS app in the background)
    lines = (folder / "TotalAcceleration.csv").read_text().splitlines()
    t = np.array([float(line.split(",")[1]) for line in lines[1:]])
    keep = [lines[0]] + [line for line, ti in zip(lines[1:], t, strict=True)
                         if not 60.0 <= ti < 80.0]
    (folder / "TotalAcceleration.csv").write_text("\n".join(keep) + "\n")
    export = phone_export.find_export(folder)
    ts, samples = phone_export.read_export(export)
    gap = np.diff(ts).max()
    assert 19.5 < gap < 20.5  # a gap, not 20 s of made-up acceleration
    assert np.isfinite(samples).all()
    (folder / "Gyroscope.csv").write_bytes(b"")
    rc, _, err = analyse(capsys, folder)
    assert rc == 2 and "0 bytes" in err and "gyroscope" in err


def test_no_units_and_no_gyroscope_are_named(tmp_path, capsys):
    folder = copy(tmp_path, ANDROID)
    rewrite(folder / "Accelerometer.csv", header=['"t"', '"ax"', '"ay"', '"az"'])
    rc, _, err = analyse(capsys, folder / "Gyroscope.csv")
    assert rc == 2 and "no units" in err
    folder = copy(tmp_path / "b", ANDROID)
    (folder / "Gyroscope.csv").unlink()
    (folder / "Magnetometer.csv").write_text('"Time (s)","Magnetic field x (µT)"\n0,1\n')
    rc, _, err = analyse(capsys, folder)
    assert rc == 2 and "no gyroscope" in err


def test_a_running_sensor_logger_recording_is_not_refused_for_its_units(tmp_path, capsys):
    folder = copy(tmp_path, SL)
    path = folder / "TotalAcceleration.csv"
    lines = path.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:  # running: the median |a| near 15.4 m/s^2
        c = line.split(",")
        out.append(",".join(c[:2] + [f"{float(v) * 1.57:.6f}" for v in c[2:]]))
    path.write_text("\n".join(out) + "\n")
    _, s = phone_export.read_export(phone_export.find_export(folder))
    assert np.median(np.linalg.norm(s[:, :3], axis=1)) == pytest.approx(15.4, rel=0.05)
    rc, _, err = analyse(capsys, folder)
    assert rc == 0, err


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "1_000", "0x10", "", "NaN"])
def test_non_finite_and_non_numeric_values_are_refused_in_one_line(tmp_path, capsys, value):
    folder = copy(tmp_path, ANDROID)
    lines = (folder / "Gyroscope.csv").read_text().splitlines()
    c = lines[500].split(",")
    c[2] = value
    lines[500] = ",".join(c)
    (folder / "Gyroscope.csv").write_text("\n".join(lines) + "\n")
    rc, result, err = analyse(capsys, folder)
    assert rc == 2 and result is None
    assert "Gyroscope.csv:501" in err and err.count("\n") == 1 and "Traceback" not in err


def damaged_zips(tmp_path: Path) -> dict[str, Path]:
    good = zipped(REAL / IOS, tmp_path / "good.zip")
    data = good.read_bytes()
    out = {}
    # a flipped byte inside a member's compressed data: bad deflate or bad CRC
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("Gyroscope.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for name, at in (("deflate", start + 10), ("crc", start + info.compress_size // 2)):
        broken = bytearray(data)
        broken[at] ^= 0xFF
        out[name] = tmp_path / f"{name}.zip"
        out[name].write_bytes(bytes(broken))
    out["truncated"] = tmp_path / "truncated.zip"
    out["truncated"].write_bytes(data[: len(data) // 2] + data[-22:])
    for name, flag_or_method in (("encrypted", "flag"), ("compression", "method")):
        broken = bytearray(data)
        # the central directory entry of Gyroscope.csv: flags at +8, method at +10
        cd = data.rfind(b"PK\x01\x02Gyro"[:4], 0, len(data))
        while cd >= 0 and data[cd + 46: cd + 46 + 13] != b"Gyroscope.csv":
            cd = data.rfind(b"PK\x01\x02", 0, cd)
        if flag_or_method == "flag":
            broken[cd + 8] |= 0x01
        else:
            broken[cd + 10] = 99
            broken[info.header_offset + 8] = 99
        out[name] = tmp_path / f"{name}.zip"
        out[name].write_bytes(bytes(broken))
    return out


@pytest.mark.parametrize("kind", ["deflate", "crc", "truncated", "encrypted", "compression"])
def test_damaged_and_encrypted_zips_are_refused_in_one_line(tmp_path, capsys, kind):
    path = damaged_zips(tmp_path)[kind]
    rc, result, err = analyse(capsys, path)
    assert rc == 2, err
    assert result is None and err.count("\n") == 1 and "Traceback" not in err
    if kind == "encrypted":
        assert "encrypted" in err


def test_a_zip_bomb_and_too_many_members_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(phone_export, "MAX_MEMBER_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(REAL / IOS / "Accelerometer.csv", "Accelerometer.csv")
        header = (REAL / IOS / "Gyroscope.csv").read_text().splitlines()[0]
        z.writestr("Gyroscope.csv", header + "\n" + "0;0;0;0\n" * 400_000)  # 3.2 MB inflated
    rc, _, err = analyse(capsys, bomb)
    assert rc == 2 and "inflates to" in err
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(phone_export.MAX_MEMBERS + 1):
            z.writestr(f"f{i}.csv", "")
    rc, _, err = analyse(capsys, many)
    assert rc == 2 and "files" in err
