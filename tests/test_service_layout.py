"""The service's shape: a loop that opens nothing itself, sinks behind one Protocol, and the
production wiring in one composition root."""

from __future__ import annotations

import inspect
import subprocess
import sys

from roller.service import sinks
from roller.service.loop import Service


def test_the_service_module_opens_nothing_itself() -> None:
    """Importing the loop loads no sensor, outbox, broker client, GPIO, history or wiring."""
    code = ("import sys, roller.service.loop; bad = [m for m in ('roller.service.wiring', "
            "'roller.mqtt.outbox', "
            "'firmware_bridge.sensor', 'firmware_bridge.gpio', 'roller.coaching.history', "
            "'paho.mqtt.client', 'gpiozero') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", out


def test_every_sink_has_the_protocols_methods() -> None:
    wanted = {name for name, _ in inspect.getmembers(sinks.Sink, inspect.isfunction)
              if not name.startswith("_")}
    assert wanted == {"on_event", "on_sensor", "on_step", "close"}
    for cls in (sinks.ControlsSink, sinks.HistorySink, sinks.MqttSink, sinks.SystemdSink):
        for name in wanted:
            ours = inspect.signature(getattr(cls, name))
            theirs = inspect.signature(getattr(sinks.Sink, name))
            assert list(ours.parameters) == list(theirs.parameters), (cls.__name__, name)


def test_the_loop_is_short() -> None:
    source = inspect.getsource(Service)
    assert len(source.splitlines()) <= 220, len(source.splitlines())
