"""Which phone app the config names, opened: phyphox polled or Sensor Logger's pushes."""

from __future__ import annotations

from firmware_bridge.clock import Clock
from roller.phone.settings import PhoneSettings
from roller.phone.source import PhoneSource, PhyphoxSource


def open_phone(settings: PhoneSettings, *, clock: Clock | None = None) -> PhoneSource:
    """The phone source ``[phone]`` names (it reads like a chip driver)."""
    if settings.app == "phyphox":
        return PhyphoxSource(settings, clock=clock)
    if settings.app == "sensor-logger":
        from roller.phone.sensor_logger import SensorLoggerSource  # its HTTP server, only then

        return SensorLoggerSource(settings, clock=clock)
    raise ValueError(f"[phone] app = {settings.app!r}: no phone to open")
