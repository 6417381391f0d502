"""Config section ``[phone]``: use a phone app's live stream as the roller's sensor."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from roller.base.errors import ConfigError
from roller.base.settings import setting

APPS = ("none", "phyphox", "sensor-logger")


@dataclass(frozen=True)
class PhoneSettings:
    """Config section ``[phone]``: a phone app as the sensor (app = none: the IMU chip)."""

    app: str = setting("none", choices=APPS,
                       doc="phone app to read instead of the IMU chip: none, phyphox (polls "
                           "its remote access) or sensor-logger (receives its HTTP pushes)")
    url: str = setting("", doc="phyphox remote-access address shown by the app, e.g. "
                               "http://192.168.1.23:8080 (app = phyphox)")
    listen_host: str = setting("0.0.0.0", doc="address the Sensor Logger receiver listens on")
    listen_port: int = setting(8090, minimum=0, maximum=65535,
                               doc="port the Sensor Logger receiver listens on (0: any free)")
    poll_interval_s: float = setting(0.05, unit="s", minimum=0.02, maximum=0.1,
                                     doc="phyphox: time between polls (10 Hz or faster)")
    request_timeout_s: float = setting(1.0, unit="s", minimum=0.1, maximum=10.0,
                                       doc="phyphox: give up on one request after this long")
    unreachable_after_s: float = setting(2.0, unit="s", minimum=0.2, maximum=60.0,
                                         doc="no answer for this long: the phone counts as "
                                             "unreachable (health degraded)")
    start_measuring: bool = setting(True, doc="phyphox: press start remotely when the phone "
                                              "is not measuring")
    push_silent_s: float = setting(8.0, unit="s", minimum=1.0, maximum=60.0,
                                   doc="Sensor Logger: no push for this long counts as a "
                                       "silent phone (health degraded); set above the app's "
                                       "batch period (0.2-5 s)")
    max_accel_gap_s: float = setting(0.25, unit="s", minimum=0.02, maximum=5.0,
                                     doc="accelerometer samples further apart than this are "
                                         "not interpolated across: the gyro samples between "
                                         "them are dropped (a gap stays a gap)")

    def __post_init__(self) -> None:
        if self.app == "phyphox" and not self.url:
            raise ConfigError("phone.url", "the phyphox remote-access address shown by the "
                              "app (e.g. http://192.168.1.23:8080) with app = phyphox", "")


def phone_from_option(spec: str, *, port: int | None = None,
                      base: PhoneSettings | None = None) -> PhoneSettings:
    """``--phone phyphox:http://HOST:PORT`` or ``--phone sensor-logger`` (with
    ``--phone-port P``) on top of ``[phone]``; ConfigError names the option."""
    base = base or PhoneSettings()
    app, _, rest = spec.partition(":")
    app = app.strip().lower()
    if app == "phyphox" and rest.strip():
        return dataclasses.replace(base, app="phyphox", url=rest.strip())
    if app in ("sensor-logger", "sensorlogger") and not rest:
        return dataclasses.replace(base, app="sensor-logger", listen_port=base.listen_port
                                   if port is None else port)
    raise ConfigError("--phone", "phyphox:http://HOST:PORT (the address phyphox shows under "
                      "'Allow remote access') or sensor-logger", spec)
