"""Home Assistant recorder rows per hour of rolling: the ``state`` topic against the old 10 Hz
``live`` entities.

    .venv/bin/python benchmarks/bench_ha_recorder.py [--seconds 600] [--seed 7]

Runs the production service (``build_service(config, simulate=True, seed=...)``) on a
ManualClock for ``--seconds`` of a simulated coached session (no broker: the sinks' output is
captured in process), then renders every Home Assistant template on every message its entity
would receive, with Jinja2 as Home Assistant does (tests/ha_rules.py), and counts the rows the
recorder writes: one per change of an entity's state, one per event. Figures are per entity,
scaled to one hour on the roller (time the live phase was rolling or holding).

"Before" renders the templates the roller announced until 0.1 (five entities on ``live`` at
10 Hz) on the ``live`` messages of the same run.

At rest: after the session the service restarts (a new Home Assistant sink as the service
builds it, on the same history file with the session just stored in it) and runs
``--rest-hours`` with nobody on the roller, one step a second on a wall clock from now (24 h
cross local midnight); the rows its ``state`` messages cost after its first one are counted
the same way (the day's totals fall to zero at midnight: a row each).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from ha_rules import check_device_config, recorder_rows  # noqa: E402

from firmware_bridge.clock import ManualClock  # noqa: E402
from roller.coaching.day_totals import TodaysRolling  # noqa: E402
from roller.coaching.history import History  # noqa: E402
from roller.coaching.session import Session  # noqa: E402
from roller.contract import messages as contract  # noqa: E402
from roller.contract.messages import Topics  # noqa: E402
from roller.mqtt.homeassistant import HomeAssistantSink  # noqa: E402
from roller.pipeline.events import LiveState  # noqa: E402
from roller.service.config import DeviceSettings, RollerConfig  # noqa: E402
from roller.service.sinks import Tick  # noqa: E402
from roller.service.wiring import build_service, home_assistant_discovery  # noqa: E402

OLD_LIVE_TEMPLATES = {
    "speed": "{{ value_json.speed_m_s }}",
    "phase": "{{ value_json.phase }}",
    "strokes": "{{ value_json.stroke_count }}",
    "hold_time": "{{ value_json.hold_time_s }}",
    "too_fast": "{{ 'ON' if value_json.too_fast else 'OFF' }}",
}
"""The entities on ``live`` before the state topic (roller 0.1's discovery)."""


class Capture:
    """A sink recording what the MQTT sink would send: events and live on its 0.1 s grid."""

    def __init__(self, topics: Topics, live_interval_s: float) -> None:
        self.topics = topics
        self.live_interval_s = live_interval_s
        self.messages: list[tuple[str, bytes]] = []
        self.live: list[tuple[str, bytes]] = []
        self._next_live = -1.0
        self.on_roller_s = 0.0
        self._last_now: float | None = None

    def on_event(self, event: Any, session: Any) -> None:
        body = contract.event_envelope(self.topics.device_id, event.kind, 0.0,
                                       contract.event_payload(event, session_id=session.id))
        self.messages.append((self.topics.event(event.kind), json.dumps(body).encode()))

    def on_sensor(self, change: Any) -> None:
        pass

    def on_step(self, tick: Any) -> None:
        if self._last_now is not None and tick.live is not None and \
                tick.live.phase != "idle":
            self.on_roller_s += tick.now - self._last_now
        self._last_now = tick.now
        if tick.live is not None and tick.now >= self._next_live:
            self.live.append((self.topics.live,
                              json.dumps(contract.live_payload(tick.live)).encode()))
            self._next_live = tick.now + self.live_interval_s

    def close(self, tick: Any) -> None:
        pass


def rest(config: RollerConfig, topics: Topics, service: Any, hours: float
         ) -> list[tuple[str, bytes]]:
    """``state`` messages of ``hours`` at rest after the run: a new sink on the run's history
    (as after a restart: a new session, idle), one step a second from now on a wall clock."""
    messages: list[tuple[str, bytes]] = []
    wall = [time.time()]
    with History(config.history.path(config.state_path)) as history:
        sink = HomeAssistantSink(
            lambda p: messages.append((topics.state, json.dumps(p).encode())) or True,
            config.homeassistant, unix_s=lambda: wall[0],
            today=TodaysRolling(history, device_id=config.device_id))
        coach = service.coach.sync(service.clock.monotonic())  # the finished routine
        session = Session(config.session)
        live = LiveState(t=0.0, speed_m_s=0.0, velocity_m_s=0.0, phase="idle",
                         stroke_count=0, hold_time_s=0.0, too_fast=False, calibrated=True)
        for i in range(round(hours * 3600)):
            wall[0] += 1.0
            sink.on_step(Tick(now=float(i), events=[], live=live, session=session,
                              session_changed=False, session_touched=False, coach=coach,
                              summary=None, sensor_ok=True, events_published=0))
    return messages


def run(seconds: float, seed: int, step_s: float, rest_hours: float = 0.0
        ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = RollerConfig(device=DeviceSettings(id="bench", name="Bench roller"),
                              state_dir=tmp)
        clock = ManualClock(1000.0)
        service = build_service(config, simulate=True, seed=seed, clock=clock)
        topics = service.publisher.topics
        capture = Capture(topics, config.mqtt.live_interval_s)
        ha = next(s for s in service.sinks if isinstance(s, HomeAssistantSink))
        capture_state: list[tuple[str, bytes]] = []

        def send(payload: Any) -> bool:
            capture_state.append((topics.state, json.dumps(payload).encode()))
            capture.messages.append((topics.state, json.dumps(payload).encode()))
            return True

        ha.send = send
        service.sinks.append(capture)
        try:
            for _ in range(round(seconds / step_s)):
                clock.advance(step_s)
                service.step()
        finally:
            service.close()
        resting = rest(config, topics, service, rest_hours) if rest_hours else []
    discovery = home_assistant_discovery(config, topics, chip="MPU-6050")
    problems = check_device_config(discovery, base=topics.base)
    if problems:
        raise SystemExit("discovery breaks Home Assistant's rules:\n" + "\n".join(problems))
    components = {k: v for k, v in discovery["cmps"].items() if len(v) > 1}
    rows = recorder_rows(components, capture.messages)
    old = {k: {"p": "binary_sensor" if k == "too_fast" else "sensor",
               "state_topic": topics.live, "value_template": t,
               **({"payload_on": "ON", "payload_off": "OFF"} if k == "too_fast" else {})}
           for k, t in OLD_LIVE_TEMPLATES.items()}
    old_rows = recorder_rows(old, capture.live)
    hours = capture.on_roller_s / 3600.0
    # At rest: the rows after the restarted service's first state.
    first = recorder_rows(components, resting[:1])
    rest_rows = {k: n - first[k] for k, n in recorder_rows(components, resting).items()}
    return {"simulated_s": seconds, "on_roller_s": round(capture.on_roller_s, 1),
            "state_messages": len(capture_state), "live_messages": len(capture.live),
            "rows": rows, "old_rows": old_rows, "hours": hours, "rest_hours": rest_hours,
            "rest_messages": len(resting), "rest_rows": rest_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step", type=float, default=0.05, help="service step [s]")
    parser.add_argument("--rest-hours", type=float, default=24.0,
                        help="then this long at rest, across local midnight [h]")
    args = parser.parse_args(argv)
    r = run(args.seconds, args.seed, args.step, args.rest_hours)
    hours = r["hours"] or 1.0
    print(f"simulated {r['simulated_s']:.0f} s, on the roller (rolling or holding) "
          f"{r['on_roller_s']} s; "
          f"state messages {r['state_messages']} "
          f"({r['state_messages'] / max(r['simulated_s'], 1):.2f} /s), live messages "
          f"{r['live_messages']}")
    print(f"{'entity':<34} {'rows':>6} {'rows/h':>8}")
    for cid, n in sorted(r["rows"].items(), key=lambda kv: -kv[1]):
        print(f"{cid:<34} {n:>6} {n / hours:>8.0f}")
    total = sum(r["rows"].values())
    print(f"{'TOTAL (state topic + events)':<34} {total:>6} {total / hours:>8.0f}")
    old_total = sum(r["old_rows"].values())
    print(f"before (5 entities on live at 10 Hz): {old_total} rows, {old_total / hours:.0f} "
          f"rows/h: " + ", ".join(f"{k} {v / hours:.0f}" for k, v in r["old_rows"].items()))
    if r["rest_hours"]:
        rest_total = sum(r["rest_rows"].values())
        changed = ", ".join(f"{k} {n}" for k, n in r["rest_rows"].items() if n)
        per_day = rest_total * 24 / r["rest_hours"]
        print(f"at rest {r['rest_hours']:g} h after a restart: state messages "
              f"{r['rest_messages']}, rows {rest_total} ({per_day:.0f} per day)"
              + (f": {changed}" if changed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
