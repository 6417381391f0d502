"""Buttons, a status LED and a buzzer (or vibration motor) on the Pi's GPIO, with gpiozero 2.x.

Every pin is optional (config section ``[gpio]``): a laptop, or a roller with no buttons, runs
with all of them unset, and then nothing is opened and gpiozero is not even imported. Pins are
BCM numbers. The pin factory is injectable (the gpiozero seam): tests pass
``gpiozero.pins.mock.MockFactory()`` and drive the pins.

* start/pause button and next-step button: pressing calls ``on_start_pause`` / ``on_next``
  (from gpiozero's thread: keep the callbacks short, e.g. put a command on a queue);
* status LED: one blink pattern per status, readable across a room (see :data:`PATTERNS`);
* buzzer or vibration motor: :meth:`Controls.pulse_too_fast` gives two short pulses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from firmware_bridge.settings import setting

log = logging.getLogger(__name__)

Status = Literal["idle", "rolling", "holding", "fault"]

PATTERNS: dict[str, tuple[float, float] | None] = {
    "idle": (0.1, 1.9),       # a short blink every 2 s: powered, waiting
    "rolling": None,          # steady on
    "holding": (0.6, 0.6),    # slow, even blink: breathe
    "fault": (0.1, 0.1),      # fast flicker: look at the sensor / the display
}
"""Status -> (on [s], off [s]) blink times; None means steady on."""


@dataclass(frozen=True)
class GpioSettings:
    """Config section ``[gpio]``: BCM pin numbers; leave a pin out if it is not wired."""

    start_pause_pin: int | None = setting(None, minimum=0, maximum=27,
                                          doc="button to GND that starts / pauses a session")
    next_pin: int | None = setting(None, minimum=0, maximum=27,
                                   doc="button to GND that skips to the next routine step")
    status_led_pin: int | None = setting(None, minimum=0, maximum=27,
                                         doc="status LED (with its resistor) to GND")
    buzzer_pin: int | None = setting(None, minimum=0, maximum=27,
                                     doc="active buzzer, or a vibration motor through a "
                                         "transistor, pulsed when rolling too fast")
    buzzer_active_high: bool = setting(True, doc="false if the buzzer / motor driver is "
                                                 "switched on by a low pin")
    bounce_time_s: float = setting(0.05, unit="s", minimum=0.0, maximum=1.0,
                                   doc="button debounce time")
    pulse_on_s: float = setting(0.15, unit="s", minimum=0.01, maximum=2.0,
                                doc="length of each too-fast pulse")
    pulse_off_s: float = setting(0.1, unit="s", minimum=0.01, maximum=2.0,
                                 doc="pause between the pulses")
    pulses: int = setting(2, minimum=1, maximum=10, doc="pulses per too-fast alert")

    @property
    def any_pin(self) -> bool:
        return any(p is not None for p in (self.start_pause_pin, self.next_pin,
                                           self.status_led_pin, self.buzzer_pin))


class Controls:
    """The physical controls. With no pins configured every method does nothing."""

    def __init__(self, settings: GpioSettings | None = None, *, pin_factory: Any = None,
                 on_start_pause: Callable[[], None] | None = None,
                 on_next: Callable[[], None] | None = None) -> None:
        self.settings = settings = settings or GpioSettings()
        self.status: Status | None = None
        self._devices: list[Any] = []
        self.start_pause_button: Any = None
        self.next_button: Any = None
        self.status_led: Any = None
        self.buzzer: Any = None
        if not settings.any_pin:
            return
        try:
            self._open(settings, pin_factory, on_start_pause, on_next)
        except Exception:
            self.close()
            raise

    def _open(self, s: GpioSettings, factory: Any, on_start_pause: Callable[[], None] | None,
              on_next: Callable[[], None] | None) -> None:
        from gpiozero import LED, Button, DigitalOutputDevice  # only when a pin is wired

        bounce = s.bounce_time_s or None
        if s.start_pause_pin is not None:
            self.start_pause_button = self._add(Button(s.start_pause_pin, bounce_time=bounce,
                                                       pin_factory=factory))
            if on_start_pause is not None:
                self.start_pause_button.when_pressed = _guarded(on_start_pause, "start/pause")
        if s.next_pin is not None:
            self.next_button = self._add(Button(s.next_pin, bounce_time=bounce,
                                                pin_factory=factory))
            if on_next is not None:
                self.next_button.when_pressed = _guarded(on_next, "next")
        if s.status_led_pin is not None:
            self.status_led = self._add(LED(s.status_led_pin, pin_factory=factory))
        if s.buzzer_pin is not None:
            self.buzzer = self._add(DigitalOutputDevice(
                s.buzzer_pin, active_high=s.buzzer_active_high, pin_factory=factory))

    def _add(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    def show_status(self, status: Status) -> None:
        """Set the LED's pattern; repeating the current status changes nothing."""
        if status not in PATTERNS:
            raise ValueError(f"unknown status {status!r}: expected one of {', '.join(PATTERNS)}")
        if status == self.status:
            return
        self.status = status
        if self.status_led is None:
            return
        pattern = PATTERNS[status]
        if pattern is None:
            self.status_led.on()
        else:
            self.status_led.blink(on_time=pattern[0], off_time=pattern[1], background=True)

    def pulse_too_fast(self) -> None:
        """Buzz (or vibrate) a few short pulses, in the background."""
        if self.buzzer is None:
            return
        s = self.settings
        self.buzzer.blink(on_time=s.pulse_on_s, off_time=s.pulse_off_s, n=s.pulses,
                          background=True)

    def close(self) -> None:
        """Release every pin (LED and buzzer off); each in its own try."""
        for device in reversed(self._devices):
            with contextlib.suppress(Exception):
                device.close()
        self._devices.clear()

    def __enter__(self) -> Controls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _guarded(callback: Callable[[], None], name: str) -> Callable[[], None]:
    """A button callback that logs instead of killing gpiozero's event thread."""

    def pressed() -> None:
        try:
            callback()
        except Exception:
            log.exception("the %s button handler failed", name)

    return pressed
