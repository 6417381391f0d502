"""Real phone exports replayed through the live path give what ``roller analyze`` gives.

Each real export's two streams (accelerometer and gyro, each on its own timestamps, as the
phone sampled them) are served by the stand-in phyphox phone (and, for the Sensor Logger
export, pushed as Sensor Logger pushes them); the phone source polls or receives them, merges
the two clocks, maps the phone's clock onto ours, and the same pipeline the service runs turns
them into events. Strokes, holds and too-fast passes must match ``roller analyze`` on the same
export: the same counts, distances within 5 %.
"""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
from test_phone_export import ANDROID, IOS, REAL, SL

from firmware_bridge.clock import ManualClock
from roller.phone.phyphox_standin import StandInPhyphox
from roller.phone.sensor_logger import SensorLoggerSource
from roller.phone.settings import PhoneSettings
from roller.phone.source import PhoneSource, PhyphoxSource
from roller.pipeline import Pipeline, PipelineSettings
from roller.recordings.analysis import analyze
from roller.recordings.phone_export import find_export, read_streams

pytestmark = pytest.mark.skipif(REAL is None, reason="real phone exports not found")
STEP_S = 0.05


def kinds(events) -> dict[str, list]:
    out: dict[str, list] = {"stroke": [], "hold": [], "too_fast": []}
    for e in events:
        if e.kind in out:
            out[e.kind].append(e)
    return out


def live_events(source: PhoneSource, clock: ManualClock, seconds: float, feed) -> dict:
    pipeline = Pipeline(PipelineSettings())
    events = []
    for i in range(round(seconds / STEP_S)):
        clock.advance(STEP_S)
        feed(i)
        t, s = source.read()
        if t.size:
            events += pipeline.update(t, s)
    events += pipeline.finish()
    return kinds(events)


def compare(live: dict, summary) -> None:
    assert len(live["stroke"]) == len(summary.strokes)
    assert len(live["hold"]) == len(summary.holds)
    assert len(live["too_fast"]) == len(summary.too_fast)
    for a, b in zip(live["stroke"], summary.strokes, strict=True):
        assert abs(a.distance_m) == pytest.approx(abs(b.distance_m), rel=0.05, abs=0.002)


@pytest.mark.parametrize("name", [ANDROID, IOS])
def test_a_phyphox_export_polled_live_gives_what_analyze_gives(name):
    export = find_export(REAL / name)
    ta, va, tg, vg = read_streams(export)
    summary = analyze(str(REAL / name), PipelineSettings())
    clock = ManualClock(100.0)
    with StandInPhyphox(lambda t: np.zeros((t.size, 6)), port=0, clock=clock,
                        measuring=False) as phone:
        phone.replay(ta, va, tg, vg)
        source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                               start=False)
        live = live_events(source, clock, max(ta[-1], tg[-1]) + 1.0,
                           lambda i: source.poll_once())
    assert source.health.connected
    compare(live, summary)


def test_a_sensor_logger_export_pushed_live_gives_what_analyze_gives():
    export = find_export(REAL / SL)
    ta, va, tg, vg = read_streams(export)
    summary = analyze(str(REAL / SL), PipelineSettings())
    clock = ManualClock(100.0)
    source = SensorLoggerSource(PhoneSettings(app="sensor-logger", listen_host="127.0.0.1",
                                              listen_port=0), clock=clock)
    epoch_ns = 1_707_663_721_288_000_000
    period = 20  # a push every 1 s
    sent = [-np.inf]

    def push(i: int) -> None:
        if i % period:
            return
        upto = (i + 1) * STEP_S
        payload = []
        for name, t, v in (("gyroscope", tg, vg), ("totalacceleration", ta, va)):
            sel = (t > sent[0]) & (t <= upto)
            payload += [{"name": name, "time": epoch_ns + round(ti * 1e9),
                         "values": {"x": x, "y": y, "z": z}}
                        for ti, (x, y, z) in zip(t[sel], v[sel].tolist(), strict=True)]
        sent[0] = upto
        conn = http.client.HTTPConnection("127.0.0.1", source.port, timeout=10)
        conn.request("POST", f"/push?token={source.token}",
                     body=json.dumps({"sessionId": "s", "payload": payload}).encode(),
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()

    try:
        live = live_events(source, clock, max(ta[-1], tg[-1]) + 2.0, push)
    finally:
        source.close()
    compare(live, summary)
