"""Sensor Logger's HTTP push, received live: a stand-in pusher sends the documented JSON to
the receiver of ``roller run --phone sensor-logger``, through the real service and mosquitto.

The pusher is the simulated person's phone: gyroscope and total acceleration on their own
clocks (ns since 1970), batched every 0.2-5 s, sometimes one sensor per push, plus the app's
"Tap to Test" message. The service and the receiver share a ManualClock: each push is sent
(real HTTP) when its batch would be, then the service steps.
"""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
from test_mqtt_support import Subscriber, retained
from test_phone_live import PHONE_GYRO_OFFSET, make_service, phone_scenario

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import RestSegment, Scenario, SimulatedRoller
from roller.phone.sensor_logger import MAX_PUSH_BYTES, SensorLoggerSource, parse_push
from roller.phone.settings import PhoneSettings

EPOCH_NS = 1_765_000_000_000_000_000
STEP_S = 0.05


class Pusher:
    """Sends a simulated phone's samples as Sensor Logger does."""

    def __init__(self, source: SensorLoggerSource, scenario: Scenario, *, token=None,
                 gyro_hz=100.0, accel_hz=100.0, session="s1") -> None:
        self.source = source
        self.roller = SimulatedRoller(scenario, seed=5)
        self.token = source.token if token is None else token
        rng = np.random.default_rng(1)
        end = self.roller.duration_s
        self.tg = np.cumsum(rng.uniform(0.8, 1.2, int(end * gyro_hz * 1.1)) / gyro_hz)
        self.ta = np.cumsum(rng.uniform(0.8, 1.2, int(end * accel_hz * 1.1)) / accel_hz) + 0.003
        self.tg, self.ta = self.tg[self.tg < end], self.ta[self.ta < end]
        self.session = session
        self.sent_upto = 0.0
        self.messages = 0

    def batch(self, upto: float, *, only: str | None = None) -> dict:
        lo = self.sent_upto
        entries = []
        for name, t, cols in (("gyroscope", self.tg, slice(3, 6)),
                              ("totalacceleration", self.ta, slice(0, 3))):
            if only and name != only:
                continue
            sel = t[(t > lo) & (t <= upto)]
            values = self.roller.imu(sel)[:, cols] if sel.size else np.zeros((0, 3))
            entries += [{"name": name, "time": EPOCH_NS + round(ti * 1e9),
                         "values": {"x": v[0], "y": v[1], "z": v[2]}, "accuracy": 3}
                        for ti, v in zip(sel, values, strict=True)]
        if only is None:
            self.sent_upto = upto
        self.messages += 1
        return {"messageId": self.messages, "sessionId": self.session, "deviceId": "phone-1",
                "payload": entries}

    def post(self, body: bytes | dict, *, path: str | None = None,
             headers: dict | None = None) -> tuple[int, dict]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.source.port, timeout=5)
        try:
            conn.request("POST", path or f"/push?token={self.token}", body=raw,
                         headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def receiver(clock):
    source = SensorLoggerSource(PhoneSettings(app="sensor-logger", listen_host="127.0.0.1",
                                              listen_port=0), clock=clock)
    yield source
    source.close()


def test_the_push_url_carries_a_token_and_pushes_without_it_are_refused(receiver):
    pusher = Pusher(receiver, Scenario(segments=(RestSegment(5.0),)))
    url = receiver.push_url("10.0.0.2")
    assert url == f"http://10.0.0.2:{receiver.port}/push?token={receiver.token}"
    assert len(receiver.token) >= 16
    test_message = {"messageId": 0, "sessionId": "x", "deviceId": "d",
                    "payload": [{"name": "test", "time": EPOCH_NS, "values": {}}]}
    assert pusher.post(test_message)[0] == 200 and receiver.tests == 1
    assert pusher.post(test_message, path="/push")[0] == 403
    assert pusher.post(test_message, path="/push?token=" + "x" * 16)[0] == 403
    assert receiver.refusals.counts()["token"] == 2
    assert receiver.pushes == 1


def test_hostile_pushes_are_refused_and_the_receiver_goes_on(receiver, clock):
    pusher = Pusher(receiver, Scenario(segments=(RestSegment(5.0),)))
    assert pusher.post(b"[" * 5000)[0] == 400                       # deeply nested
    assert pusher.post(b"not json")[0] == 400
    assert pusher.post(b'{"payload": 3}')[0] == 400
    status, _ = pusher.post(b"{}", headers={"Content-Length": str(MAX_PUSH_BYTES + 1)})
    assert status == 413
    assert pusher.post(b'{"payload": [{"name": "gyroscope", "time": 1, "values": '
                       b'{"x": NaN, "y": 0, "z": 0}}]}')[0] == 400  # not JSON
    status, _ = pusher.post(json.dumps({"sessionId": "s", "payload": [
        {"name": "gyroscope", "time": EPOCH_NS, "values": {"x": "nan", "y": 0, "z": 0}},
        {"name": "gyroscope", "time": EPOCH_NS + 1, "values": {"x": "1e400", "y": 0, "z": 0}},
        {"name": "gyroscope", "time": "soon", "values": {"x": 0, "y": 0, "z": 0}},
        {"name": "gyroscope", "time": EPOCH_NS + 2, "values": {"x": True, "y": 0, "z": 0}},
        [1, 2, 3]]}).replace('"1e400"', "1e400").encode())
    assert status == 200 and receiver.bad_readings == 5
    assert sum(receiver.refusals.counts().values()) == 5
    # still working: a good batch is taken
    clock.advance(1.0)
    assert pusher.post(pusher.batch(1.0))[0] == 200
    t, s = receiver.read()
    assert t.size > 80 and np.isfinite(s).all()


@pytest.mark.parametrize("period_s", [0.2, 1.0, 5.0])
def test_a_pushed_session_is_coached_through_the_service(broker, tmp_path, clock, receiver,
                                                         period_s):
    scenario = phone_scenario()
    pusher = Pusher(receiver, scenario)
    service = make_service(broker, tmp_path, receiver, clock, device="push",
                           sensor_stale_s=receiver.settings.push_silent_s)
    sub = Subscriber(broker.host, broker.port, "roller/push/#")
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    try:
        events, n = [], 0
        steps_per_push = round(period_s / STEP_S)
        for i in range(round((scenario.duration_s + 2) / STEP_S)):
            clock.advance(STEP_S)
            if i % steps_per_push == steps_per_push - 1:
                n += 1
                upto = (i + 1) * STEP_S
                if n % 3 == 0:  # sometimes the gyro comes alone, the rest in the next push
                    assert pusher.post(pusher.batch(upto, only="gyroscope"))[0] == 200
                assert pusher.post(pusher.batch(upto))[0] == 200
            events.extend(service.step())
        kinds = [e.kind for e in events]
        assert 10 <= kinds.count("stroke") <= 14, kinds
        assert "too_fast_alert" in kinds and "hold" in kinds
        assert np.allclose(service.pipeline.bias.bias, PHONE_GYRO_OFFSET, atol=0.02)
        assert service.health.sensor_ok is True  # 5 s batches are not a silent phone
        sub.wait_for(lambda ms: any(m.topic.endswith("/event/too_fast_alert") for m in ms),
                     5, "too-fast alert")
        health = retained(broker.host, broker.port, "roller/push/health").json()
        assert health["state"] == "ok" and health["sensor"]["chip"] == "Sensor Logger"
    finally:
        service.close()
        sub.close()


def test_a_silent_pusher_degrades_health_and_comes_back(broker, tmp_path, clock, receiver):
    pusher = Pusher(receiver, Scenario(segments=(RestSegment(60.0),)))
    service = make_service(broker, tmp_path, receiver, clock, device="push",
                           sensor_stale_s=receiver.settings.push_silent_s)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    try:
        t = 0.0
        for _ in range(20):
            t += 0.5
            clock.advance(0.5)
            pusher.post(pusher.batch(t))
            service.step()
        assert service.health.sensor_ok is True
        for _ in range(20):  # 10 s without a push
            clock.advance(0.5)
            service.step()
        assert receiver.health.connected is False
        assert "phone silent" in receiver.health.last_error
        assert service.health.sensor_ok is False
        for _ in range(4):
            t += 10.5 if _ == 0 else 0.5
            clock.advance(0.5)
            pusher.sent_upto = t - 0.5
            pusher.post(pusher.batch(t))
            service.step()
        assert receiver.health.connected is True and service.health.sensor_ok is True
    finally:
        service.close()


def test_acceleration_without_gravity_alone_says_what_to_turn_on(receiver, clock):
    base = {"sessionId": "s", "payload": []}
    for k in range(4):
        clock.advance(0.5)
        base["payload"] = [{"name": "accelerometer", "time": EPOCH_NS + k * 10**8 + i * 10**7,
                            "values": {"x": 0.1, "y": 0.0, "z": 0.0}} for i in range(10)]
        Pusher(receiver, Scenario(segments=(RestSegment(1.0),))).post(base)
    assert "Total Acceleration" in receiver.health.last_error


def test_accelerometer_plus_gravity_stands_in_for_total_acceleration(receiver, clock):
    parsed = parse_push({"sessionId": "s", "payload": [
        {"name": "gravity", "time": EPOCH_NS, "values": {"x": 0, "y": 0, "z": 9.81}}]})
    assert parsed["gravity"][1].tolist() == [[0.0, 0.0, 9.81]]
    pusher = Pusher(receiver, Scenario(segments=(RestSegment(1.0),)))
    payload = []
    for i in range(100):
        ns = EPOCH_NS + i * 10**7
        payload += [{"name": "gravity", "time": ns, "values": {"x": 0, "y": 0, "z": 9.81}},
                    {"name": "accelerometer", "time": ns, "values": {"x": 0.1, "y": 0, "z": 0}},
                    {"name": "gyroscope", "time": ns + 10**6, "values": {"x": 0, "y": 0, "z": 0}}]
    clock.advance(1.0)
    assert pusher.post({"sessionId": "s", "payload": payload})[0] == 200
    t, s = receiver.read()
    assert t.size > 90 and np.allclose(s[:, :3], [0.1, 0.0, 9.81])
