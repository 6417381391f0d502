"""GPIO controls with gpiozero's MockFactory: pins driven and read, no hardware."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from gpiozero.pins.mock import MockFactory

from firmware_bridge.errors import ConfigError
from firmware_bridge.gpio import PATTERNS, Controls, GpioSettings
from firmware_bridge.settings import from_mapping

BUTTON, NEXT, LED_PIN, BUZZER = 17, 27, 22, 23


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def wait_for(predicate, timeout_s=2.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def settings(**overrides):
    base = {"start_pause_pin": BUTTON, "next_pin": NEXT, "status_led_pin": LED_PIN,
            "buzzer_pin": BUZZER}
    base.update(overrides)
    return GpioSettings(**base)


def test_buttons_call_their_handlers(factory):
    presses = []
    controls = Controls(settings(), pin_factory=factory,
                        on_start_pause=lambda: presses.append("start_pause"),
                        on_next=lambda: presses.append("next"))
    factory.pin(BUTTON).drive_low()
    factory.pin(BUTTON).drive_high()
    factory.pin(NEXT).drive_low()
    assert wait_for(lambda: presses == ["start_pause", "next"])
    controls.close()


def test_a_failing_handler_does_not_break_the_button(factory):
    calls = []

    def handler():
        calls.append(1)
        raise RuntimeError("boom")

    controls = Controls(settings(bounce_time_s=0.0), pin_factory=factory,
                        on_start_pause=handler)
    pin = factory.pin(BUTTON)
    pin.drive_low()
    pin.drive_high()
    pin.drive_low()
    assert wait_for(lambda: len(calls) == 2)
    controls.close()


def test_rolling_is_steady_on(factory):
    controls = Controls(settings(), pin_factory=factory)
    controls.show_status("rolling")
    pin = factory.pin(LED_PIN)
    assert pin.state
    time.sleep(0.15)
    assert pin.state and [s.state for s in pin.states] == [False, True]
    controls.close()


@pytest.mark.parametrize("status", ["idle", "holding", "fault"])
def test_each_status_blinks_with_its_own_timing(factory, status):
    on_s, off_s = PATTERNS[status]
    controls = Controls(settings(), pin_factory=factory)
    controls.show_status(status)
    pin = factory.pin(LED_PIN)
    assert wait_for(lambda: len(pin.states) >= 3, timeout_s=on_s + off_s + 1.0)
    states = pin.states
    assert [s.state for s in states[:3]] == [False, True, False]
    on_time = states[2].timestamp - states[1].timestamp
    assert on_time == pytest.approx(on_s, abs=0.05)
    controls.close()
    assert not pin.state


def test_same_status_twice_keeps_the_blink_going(factory):
    controls = Controls(settings(), pin_factory=factory)
    controls.show_status("fault")
    controls.show_status("fault")
    pin = factory.pin(LED_PIN)
    assert wait_for(lambda: len(pin.states) >= 5, timeout_s=1.0)
    controls.show_status("rolling")
    assert pin.state
    with pytest.raises(ValueError, match="unknown status"):
        controls.show_status("dancing")
    controls.close()


def test_too_fast_pulses_the_buzzer(factory):
    controls = Controls(settings(pulse_on_s=0.03, pulse_off_s=0.03, pulses=2),
                        pin_factory=factory)
    controls.pulse_too_fast()
    pin = factory.pin(BUZZER)
    assert wait_for(lambda: len(pin.states) >= 5 and not pin.state)
    assert [s.state for s in pin.states[:5]] == [False, True, False, True, False]
    controls.close()


def test_active_low_vibration_motor(factory):
    controls = Controls(GpioSettings(buzzer_pin=BUZZER, buzzer_active_high=False,
                                     pulse_on_s=0.03, pulse_off_s=0.03, pulses=1),
                        pin_factory=factory)
    pin = factory.pin(BUZZER)
    assert pin.state                          # idle: high = off
    controls.pulse_too_fast()
    assert wait_for(lambda: any(not s.state for s in pin.states[1:]) and pin.state)
    controls.close()


def test_no_pins_does_nothing_and_imports_no_hardware_library():
    code = ("import sys\n"
            "from firmware_bridge.gpio import Controls, GpioSettings\n"
            "c = Controls(GpioSettings())\n"
            "c.show_status('fault'); c.pulse_too_fast(); c.close()\n"
            "assert 'gpiozero' not in sys.modules, 'gpiozero imported'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_pins_are_validated():
    with pytest.raises(ConfigError, match=r"gpio\.status_led_pin"):
        from_mapping(GpioSettings, {"status_led_pin": 40}, prefix="gpio.")
    assert from_mapping(GpioSettings, {"buzzer_pin": 12}).buzzer_pin == 12
