"""``roller analyze FILE --plot OUT``: the chart of a recording, checked for its parts (an SVG's
groups and labels, a PNG's size) and for the message when matplotlib is missing."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from roller.cli import main
from roller.recordings.simulate import main as simulate

pytest.importorskip("matplotlib")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "session.csv"
    assert simulate([str(path), "--seconds", "120", "--rate", "100"]) == 0
    return path


def test_the_svg_has_every_part_of_the_chart(recording: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "chart.svg"
    assert main(["analyze", str(recording), "--plot", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # --json still prints the analysis
    assert f"chart written to {out}" in captured.err
    root = ET.parse(out).getroot()
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    holds = len(summary["holds"])
    too_fast = len(summary["too_fast"])
    assert holds >= 1 and too_fast >= 1 and summary["speed"]["strokes"] >= 10
    assert {"speed", "go-slow-band", "limit", "strokes", "too-fast"} <= ids
    assert {f"hold-{i}" for i in range(holds)} <= ids
    assert {f"too-fast-{i}" for i in range(too_fast)} <= ids
    # the speed line is drawn through the whole recording
    path = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "speed").find(f".//{SVG}path")
    assert path is not None and path.get("d").count("L") > 500
    strokes = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "strokes")
    assert len(list(strokes.iter(f"{SVG}use"))) == summary["speed"]["strokes"]
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    for label in ("speed [cm/s]", "time [m:ss]", "go slow: up to 2.5 cm/s",
                  "too fast: above 5 cm/s", "hold", f"{summary['speed']['strokes']} strokes",
                  "session.csv"):
        assert label in text, label


def test_a_png_is_a_picture_of_the_right_size(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    assert main(["analyze", str(recording), "--plot", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1320, 528) and len(data) > 30_000


def test_an_unknown_suffix_and_a_missing_matplotlib_are_said(recording: Path,
                                                               tmp_path: Path) -> None:
    assert main(["analyze", str(recording), "--plot", str(tmp_path / "c.gif")]) == 1
    # matplotlib made unimportable in a fresh interpreter, as on a Pi without the extra
    code = ("import sys; sys.modules['matplotlib'] = None; from roller.cli import main; "
            f"sys.exit(main(['analyze', {str(recording)!r}, '--plot', "
            f"{str(tmp_path / 'c.png')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert "pip install 'roller-companion[plot]'" in run.stderr
    assert not (tmp_path / "c.png").exists()
