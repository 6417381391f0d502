"""The phone as the sensor, live: phyphox's remote access through the real service.

A stand-in phyphox server (real HTTP, the documented API) is fed by the simulated person; the
service reads it through :class:`roller.phone.source.PhyphoxSource` with the real pipeline,
publisher and a real mosquitto. In-process tests share a ManualClock between the stand-in
phone and the service and poll once per step (one request in flight, deterministic); the
subprocess test runs ``roller run --phone phyphox:URL`` in real time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import Broker
from test_mqtt_support import Subscriber, retained

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import (
    HoldSegment,
    RestSegment,
    Scenario,
    SimulatedRoller,
    StrokeSegment,
)
from roller.contract.messages import Topics
from roller.mqtt.client import MqttSettings
from roller.mqtt.outbox import Outbox
from roller.mqtt.publisher import Publisher
from roller.phone.phyphox import LayoutError, parse_layout
from roller.phone.phyphox_standin import StandInPhyphox
from roller.phone.settings import PhoneSettings, phone_from_option
from roller.phone.source import PhyphoxSource
from roller.pipeline import Pipeline, PipelineSettings
from roller.service.config import ConfigError
from roller.service.loop import Service, ServiceSettings
from roller.service.systemd import Notifier

REPO = Path(__file__).resolve().parent.parent
FAST_MQTT = {"keepalive_s": 2, "reconnect_min_delay_s": 0.05, "reconnect_max_delay_s": 0.25,
             "shutdown_flush_s": 2.0}
STEP_S = 0.05  # one poll per step: 20 Hz
PHONE_GYRO_OFFSET = (0.2, -0.12, 0.15)  # rad/s: what phone gyros carry (guidance.md)


def phone_scenario() -> Scenario:
    """Still (to learn the phone's gyro offset), slow strokes, one too-fast pass, a hold,
    more slow strokes."""
    slow = [StrokeSegment(0.08 * (-1) ** i, 0.03) for i in range(6)]
    return Scenario(segments=(RestSegment(4.0), *slow, StrokeSegment(0.25, 0.12),
                              RestSegment(1.0), HoldSegment(6.0), *slow, RestSegment(2.0)),
                    gyro_bias_rad_s=PHONE_GYRO_OFFSET)


def phone_for(scenario: Scenario, clock, **kw) -> StandInPhyphox:
    roller = SimulatedRoller(scenario, seed=3)
    end = roller.duration_s

    def source(t: np.ndarray) -> np.ndarray:
        return roller.imu(np.minimum(t, end))  # after the scenario: still at its end

    return StandInPhyphox(source, port=0, clock=clock, **kw).start()


def make_service(broker: Broker, state: Path, source: PhyphoxSource, clock: ManualClock,
                 device: str = "phone", **service) -> Service:
    from roller.coaching.session import SessionSettings

    mqtt = MqttSettings(host=broker.host, port=broker.port, **FAST_MQTT)
    publisher = Publisher(mqtt, Topics(device), Outbox(state / "outbox.sqlite3"))
    return Service(ServiceSettings(**service), SessionSettings(), device_id=device,
                   driver=source, pipeline=Pipeline(PipelineSettings()), publisher=publisher,
                   clock=clock, notifier=Notifier({}))


def advance(service: Service, source: PhyphoxSource, clock: ManualClock, seconds: float,
            ) -> list:
    events = []
    for _ in range(round(seconds / STEP_S)):
        clock.advance(STEP_S)
        source.poll_once()
        events.extend(service.step())
    return events


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(500.0)


def test_a_phone_session_is_coached_through_the_service(broker, tmp_path, clock):
    scenario = phone_scenario()
    phone = phone_for(scenario, clock, measuring=False)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    sub = Subscriber(broker.host, broker.port, "roller/phone/#")
    service = make_service(broker, tmp_path, source, clock)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    try:
        events = advance(service, source, clock, scenario.duration_s + 3)
        kinds = [e.kind for e in events]
        # the stand-in was not measuring: the source pressed start remotely
        assert source.poller.state.starts_sent == 1
        assert any(r.startswith("/control?cmd=start") for r in phone.requests)
        # buffer names came from /config, and only new data was asked for (threshold form)
        assert phone.requests[0] == "/config"
        polls = [r for r in phone.requests if "%7C" in r]
        assert len(polls) > 0.8 * (scenario.duration_s / STEP_S)
        assert all("accX=" in r and "%7Cacc_time" in r and "gyrX=" in r for r in polls)
        assert phone.max_in_flight == 1
        # the phone's 0.2 rad/s gyro offset was learnt at rest: strokes, the fast pass, a hold
        assert 10 <= kinds.count("stroke") <= 14, kinds
        assert "too_fast_alert" in kinds and "hold" in kinds, kinds
        strokes = [e for e in events if e.kind == "stroke"]
        slow = [abs(e.distance_m) for e in strokes if abs(e.distance_m) < 0.1]
        assert np.median(slow) == pytest.approx(0.08, rel=0.15)
        # the pipeline's bias tracker learnt the phone's offset (sensor axes)
        assert np.allclose(service.pipeline.bias.bias, PHONE_GYRO_OFFSET, atol=0.02), \
            service.pipeline.bias.bias
        sub.wait_for(lambda ms: any(m.topic == "roller/phone/event/too_fast_alert"
                                    for m in ms), 5, "the too-fast alert on MQTT")
        health = retained(broker.host, broker.port, "roller/phone/health").json()
        assert health["sensor"]["chip"] == "phyphox" and health["sensor"]["connected"]
        assert health["sensor"]["output_rate_hz"] == pytest.approx(200, rel=0.1)
    finally:
        service.close()
        phone.stop()
        sub.close()


def test_an_unreachable_phone_degrades_health_and_is_picked_up_again(broker, tmp_path,
                                                                      clock):
    phone = phone_for(Scenario(segments=(RestSegment(600.0),)), clock)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    sub = Subscriber(broker.host, broker.port, "roller/phone/health")
    service = make_service(broker, tmp_path, source, clock, sensor_stale_s=1.0)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    try:
        advance(service, source, clock, 2.0)
        assert service.health.sensor_ok is True
        port = phone.port
        phone.stop()  # Wi-Fi gone: connection refused
        advance(service, source, clock, 3.0)
        assert source.health.connected is False
        assert "phone unreachable" in source.health.last_error
        assert "Allow remote access" in source.health.last_error
        sub.wait_for(lambda ms: ms and ms[-1].json()["state"] == "degraded", 5, "degraded")
        phone.port = port
        phone.start()
        assert phone.port == port
        got = advance(service, source, clock, 3.0)
        del got
        assert source.health.connected is True and source.health.last_error is None
        sub.wait_for(lambda ms: ms[-1].json()["state"] == "ok", 5, "ok again")
    finally:
        service.close()
        phone.stop()
        sub.close()


def run_source(source: PhyphoxSource, clock: ManualClock, seconds: float,
               ) -> tuple[np.ndarray, np.ndarray]:
    ts, ss = [], []
    for _ in range(round(seconds / STEP_S)):
        clock.advance(STEP_S)
        source.poll_once()
        t, s = source.read()
        ts.append(t)
        ss.append(s)
    return np.concatenate(ts), np.concatenate(ss)


def test_a_sleeping_phone_leaves_a_gap_not_invented_motion(clock):
    phone = phone_for(Scenario(segments=(StrokeSegment(0.5, 0.05),) * 4), clock)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    try:
        t1, _ = run_source(source, clock, 3.0)
        phone.sleep_for(2.0)
        t2, _ = run_source(source, clock, 4.0)
        t = np.concatenate((t1, t2))
        assert np.all(np.diff(t) > 0)
        dt = np.diff(t)
        assert dt.max() == pytest.approx(2.0, abs=0.1)  # the gap, and nothing in it
        assert np.count_nonzero(dt > 0.05) == 1
    finally:
        source.close()
        phone.stop()


def test_session_change_and_edited_buffer_names_are_followed(clock):
    phone = phone_for(Scenario(segments=(RestSegment(600.0),)), clock)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    try:
        t1, _ = run_source(source, clock, 2.0)
        phone.open_experiment("custom")  # new session, own buffer names, clock from 0
        t2, s2 = run_source(source, clock, 3.0)
        assert source.poller.state.sessions_seen == 1
        assert source.poller.state.layout.accel.x == "ax"
        assert any("ax=" in r and "%7Cta" in r for r in phone.requests)
        assert t2.size > 400 and t2[0] > t1[-1]  # mapped onto our clock, after the old ones
        assert np.all(np.diff(t2) > 0)
        assert np.median(np.linalg.norm(s2[:, :3], axis=1)) == pytest.approx(9.81, rel=0.05)
        phone.open_experiment("gyroscope only")
        run_source(source, clock, 1.0)
        assert "no accelerometer" in source.health.last_error
        phone.open_experiment("linear acceleration")
        run_source(source, clock, 1.0)
        assert "without gravity" in source.health.last_error
    finally:
        source.close()
        phone.stop()


def test_a_phone_that_refuses_a_remote_start_says_how_to_start(clock):
    phone = phone_for(Scenario(segments=(RestSegment(60.0),)), clock, measuring=False,
                      allow_remote_start=False)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    try:
        t, _ = run_source(source, clock, 1.0)
        assert t.size == 0
        assert "press the play button" in source.health.last_error
        phone.control("start")  # the user presses play
        t, _ = run_source(source, clock, 1.0)
        assert t.size > 100 and source.health.last_error is None
    finally:
        source.close()
        phone.stop()


def test_slow_and_failing_answers_lose_nothing(clock):
    phone = phone_for(Scenario(segments=(RestSegment(60.0),)), clock)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    try:
        t1, _ = run_source(source, clock, 1.0)
        phone.fail_next = 5
        t2, _ = run_source(source, clock, 1.0)
        t = np.concatenate((t1, t2))
        assert source.health.retries == 5 and source.health.connected
        # nothing lost: the next threshold read fetched what the failed ones missed
        assert np.diff(t).max() < 0.02
    finally:
        source.close()
        phone.stop()


def test_the_phone_clock_is_mapped_with_its_drift_tracked(clock):
    phone = phone_for(Scenario(segments=(RestSegment(600.0),)), clock,
                      clock_rate=1.0 + 300e-6)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    try:
        t, _ = run_source(source, clock, 70.0)
        report = source.phone_clock.report()
        assert report.drift_ppm == pytest.approx(-300, abs=60)
        # a sample's mapped time is within one poll of when the phone really took it
        truth = phone.monotonic_of(source.phone_clock._last_phone_t)
        assert abs(t[-1] - truth) < STEP_S + 0.01
    finally:
        source.close()
        phone.stop()


def test_duplicated_late_and_out_of_order_batches_add_nothing():
    src = PhyphoxSource.__new__(PhyphoxSource)  # the delivery side alone, no thread
    from roller.phone.source import PhoneSource

    PhoneSource.__init__(src, "phyphox", PhoneSettings(app="phyphox", url="http://x:1"),
                         clock=ManualClock(10.0))
    ta = np.arange(0, 1, 0.01)
    tg = np.arange(0.002, 1, 0.004)
    acc = np.tile([0.0, 0.0, 9.81], (ta.size, 1))
    gyr = np.tile([0.1, 0.0, 0.0], (tg.size, 1))
    first = src.deliver(ta[:50], acc[:50], tg[125:], gyr[125:], 10.5)  # gyro ahead
    second = src.deliver(ta[50:], acc[50:], tg[:125], gyr[:125], 11.0)  # the late gyro batch
    again = src.deliver(ta[50:], acc[50:], tg[100:], gyr[100:], 11.1)   # a duplicate
    t, _ = src.read()
    assert again == 0 and first + second == t.size
    assert np.all(np.diff(t) > 0)
    assert src.merger.dropped_late > 0


def test_layout_refusals_and_the_option():
    with pytest.raises(LayoutError, match="no gyroscope"):
        parse_layout({"title": "Acceleration with g", "inputs": [
            {"source": "accelerometer", "outputs": [{"x": "accX"}, {"y": "accY"},
                                                    {"z": "accZ"}, {"t": "acc_time"}]}]})
    layout = parse_layout({"buffers": [{"name": n} for n in (
        "accX", "accY", "accZ", "acc_time", "gyrX", "gyrY", "gyrZ", "gyr_time")]})
    assert layout.gyro.t == "gyr_time"  # an old phyphox without "inputs"
    assert phone_from_option("phyphox:http://10.0.0.5:8080").url == "http://10.0.0.5:8080"
    assert phone_from_option("sensor-logger", port=9000).listen_port == 9000
    with pytest.raises(ConfigError, match="--phone"):
        phone_from_option("phyphox")


def test_roller_run_with_a_phone_publishes_live_and_stops_on_sigterm(broker, tmp_path):
    strokes = tuple(StrokeSegment(0.1 * (-1) ** i, 0.04) for i in range(20))
    phone = phone_for(Scenario(segments=(RestSegment(3.0), *strokes)), None)
    env = {k: v for k, v in os.environ.items() if k not in ("ROLLER_CONFIG", "NOTIFY_SOCKET",
                                                            "WATCHDOG_USEC")}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    sub = Subscriber(broker.host, broker.port, ["roller/+/live", "roller/+/health",
                                                 "roller/+/event/#"])
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 - the child owns it
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "roller.cli", "run", "--phone",
                             f"phyphox:{phone.url}", "--broker", broker.address],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        sub.wait_for(lambda ms: sum("/event/stroke" in m.topic for m in ms) >= 2, 30,
                     "strokes from the phone")
        health = [m.json() for m in sub.messages if m.topic.endswith("/health")]
        assert health[-1]["sensor"]["chip"] == "phyphox"
        polls = [r for r in phone.requests if "%7C" in r]
        assert len(polls) >= 10
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        text = (tmp_path / "run.log").read_text()
        assert f"polling phyphox at {phone.url}" in text
        # polled at 10 Hz or more in real time, one request at a time
        took_s = time.monotonic() - started
        assert len(polls) / took_s >= 10, (len(polls), took_s)
        assert phone.max_in_flight == 1
    finally:
        proc.kill()
        proc.wait()
        phone.stop()
        sub.close()


@pytest.mark.parametrize(("accel_hz", "gyro_hz"), [(50.0, 50.0), (500.0, 500.0),
                                                   (400.0, 100.0)])
def test_uneven_rates_from_50_to_500_hz_reach_the_pipeline_whole(clock, accel_hz, gyro_hz):
    phone = phone_for(Scenario(segments=(StrokeSegment(0.3, 0.05),)), clock,
                      accel_rate_hz=accel_hz, gyro_rate_hz=gyro_hz)
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url), clock=clock,
                           start=False)
    try:
        t, s = run_source(source, clock, 4.0)
        assert np.all(np.diff(t) > 0)
        # every gyro sample (at +-20 % uneven spacing) after the first poll, none made up
        assert t.size == pytest.approx(gyro_hz * (t[-1] - t[0]), rel=0.1)
        assert np.diff(t).max() < 1.3 / gyro_hz
        assert source.output_rate_hz == pytest.approx(gyro_hz, rel=0.15)
        assert np.median(np.linalg.norm(s[:, :3], axis=1)) == pytest.approx(9.81, rel=0.05)
    finally:
        source.close()
        phone.stop()


def test_slow_answers_keep_one_request_in_flight_and_lose_nothing():
    phone = phone_for(Scenario(segments=(RestSegment(60.0),)), None)
    phone.slow_s = 0.3  # slower than the poll period: the poller waits, never piles up
    source = PhyphoxSource(PhoneSettings(app="phyphox", url=phone.url))
    try:
        time.sleep(3.0)
        t, _ = source.read()
        assert phone.max_in_flight == 1
        assert t.size > 200 and np.diff(t).max() < 0.02
        assert source.health.connected
    finally:
        source.close()
        phone.stop()
