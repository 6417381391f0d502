"""The composition root: builds the production :class:`~roller.service.loop.Service` from config.

``roller run`` (and through it ``roller demo``) and the end-to-end tests build the service here;
nothing else opens the sensor, the outbox, the broker connection, the GPIO pins, the coach or
the history. Each piece is opened by its own small function, so a test can build one alone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.gpio import Controls
from firmware_bridge.imu.base import ImuDriver
from firmware_bridge.physics import STANDARD_GRAVITY_M_S2
from firmware_bridge.sensor import SensorSettings, open_sensor, open_sensor_or_wait
from roller.base.paths import ensure_dir
from roller.base.state_lock import hold_state_dir
from roller.coaching.coach import Coach
from roller.coaching.day_totals import TodaysRolling
from roller.coaching.history import History, HistoryError
from roller.coaching.routine import load_routine
from roller.contract.command_table import CommandInbox
from roller.contract.messages import Topics
from roller.mqtt.client import resolve_password
from roller.mqtt.homeassistant import (
    HomeAssistantSink,
    discovery_config,
    display_url,
    mqtt_state_sender,
)
from roller.mqtt.outbox import Outbox
from roller.mqtt.publisher import Publisher
from roller.pipeline import Pipeline, PipelineSettings
from roller.pipeline.calibration import FILE_NAME as CALIBRATION_FILE_NAME
from roller.pipeline.calibration import Calibration
from roller.service.config import RollerConfig
from roller.service.loop import Service
from roller.service.sinks import MqttSink
from roller.service.systemd import Notifier

log = logging.getLogger("roller.service.wiring")


def build_service(config: RollerConfig, *, simulate: bool = False, seed: int = 0,
                  clock: Clock | None = None, notifier: Notifier | None = None,
                  person: str = "routine") -> Service:
    """The production service: the sensor (emulated with ``simulate``, moved by the simulated
    ``person``: :data:`firmware_bridge.sensor.SIMULATED_PERSONS`), the pipeline, the
    outbox, the publisher, the GPIO controls, the coach and the history from ``config``."""
    clock = clock or SystemClock()
    coach = make_coach(config, clock)  # first: a broken routine file stops before anything opens
    state_dir = ensure_dir(config.state_path)
    hold_state_dir(state_dir)  # one service per state directory: a second one exits 78
    publisher = make_publisher(config, state_dir, clock=clock)
    driver = open_driver(config, simulate=simulate, seed=seed, clock=clock, person=person)
    # A real sensor starts from its saved calibration (and saves a better one on shutdown);
    # the simulated chip has its own offsets, so a simulated run neither reads nor writes it,
    # and neither does a phone (taped on anew each time, not the chip's calibration).
    calibration_path = None if simulate or config.phone.app != "none" \
        else state_dir / CALIBRATION_FILE_NAME
    inbox = CommandInbox()
    try:
        history = open_history(config, state_dir)
    except HistoryError as exc:  # coaching goes on without persistence, and says so
        log.error("running without a session history: %s", exc)
        history = None
        # Queued by paho until the broker connection is up.
        publisher.publish_error("history_failed", f"the session history could not be opened, "
                                f"sessions are not stored: {exc}")
    service_settings = config.service
    if config.phone.app == "sensor-logger":  # pushes come every 0.2-5 s, not every read
        service_settings = dataclasses.replace(service_settings, sensor_stale_s=max(
            service_settings.sensor_stale_s, config.phone.push_silent_s))
    service = Service(service_settings, config.session, device_id=config.device_id,
                      driver=driver, pipeline=make_pipeline(config, calibration_path),
                      publisher=publisher, coach=coach, history=history,
                      controls=open_controls(config, inbox, simulate=simulate), clock=clock,
                      notifier=notifier, calibration_path=calibration_path, inbox=inbox)
    add_home_assistant(service, config, publisher, chip=driver.chip, history=history)
    return service


def add_home_assistant(service: Service, config: RollerConfig, publisher: Publisher, *,
                       chip: str | None, history: History | None = None) -> None:
    """Announce the device with its chip and display link, and add the sink that sends the
    ``state`` topic Home Assistant reads (before the MQTT sink, so the final state goes out
    before the publisher closes), with today's totals from ``history``."""
    if not config.homeassistant.enabled:
        return
    publisher.set_discovery(home_assistant_discovery(config, publisher.topics, chip=chip))
    sink = HomeAssistantSink(mqtt_state_sender(publisher), config.homeassistant,
                             outbox_dropped=lambda: publisher.outbox.dropped,
                             connects=lambda: publisher.connects,
                             today=TodaysRolling(history, device_id=config.device_id),
                             unix_s=service.clock.unix_s)
    at = next((i for i, s in enumerate(service.sinks) if isinstance(s, MqttSink)),
              len(service.sinks))
    service.sinks.insert(at, sink)


def home_assistant_discovery(config: RollerConfig, topics: Topics, *,
                             chip: str | None = None) -> dict:
    """The discovery payload for ``config`` (empty: remove the device)."""
    if not config.homeassistant.enabled:
        return {}
    return discovery_config(
        topics, name=config.device_name, hw_version=chip,
        configuration_url=display_url(config.homeassistant, device_id=config.device_id,
                                      http_host=config.display.http_host,
                                      http_port=config.display.http_port))


def make_publisher(config: RollerConfig, state_dir: Path, *,
                   clock: Clock | None = None) -> Publisher:
    """The MQTT publisher with its on-disk outbox and the Home Assistant announcement."""
    topics = Topics(config.device_id, config.mqtt.topic_prefix,
                    config.homeassistant.discovery_prefix)
    discovery = home_assistant_discovery(config, topics)
    outbox = Outbox(state_dir / "outbox.sqlite3", max_messages=config.mqtt.outbox_max_messages,
                    clock=clock)
    return Publisher(config.mqtt, topics, outbox, password=resolve_password(config.mqtt),
                     discovery=discovery, clock=clock)


def open_driver(config: RollerConfig, *, simulate: bool, seed: int, clock: Clock,
                person: str = "routine") -> ImuDriver:
    """The IMU driver (an emulated chip moved by a simulated person with ``simulate``), or the
    phone of ``[phone]`` (it reads like a driver: :mod:`roller.phone.source`). A real sensor
    that cannot be opened yet (I2C off, nothing wired) is waited for: the service runs
    degraded, saying why, and picks the sensor up when it answers, instead of exiting into a
    restart loop."""
    if config.phone.app != "none":
        from roller.phone.apps import open_phone  # lazy: a chip's service never loads it

        return open_phone(config.phone, clock=clock)
    if simulate:
        return open_sensor(config.sensor, simulate=True, seed=seed, clock=clock,
                           person=person)
    return open_sensor_or_wait(config.sensor, clock=clock)


def make_pipeline(config: RollerConfig, calibration_path: Path | None) -> Pipeline:
    """The pipeline, starting from the saved calibration (``roller calibrate``, or the last
    run's) unless ``[pipeline]`` pins the offset or axis. A saved calibration only seeds the
    estimates: the offset is tracked and the axis relearnt, so a sensor that was moved is
    found again rather than measured about a stale axis."""
    saved = Calibration.load_or_none(calibration_path) if calibration_path else None
    if saved is not None:
        log.info("starting from the calibration in %s", calibration_path)
    sensor = config.sensor if config.phone.app == "none" else dataclasses.replace(
        config.sensor, gyro_range_dps=2000, accel_range_g=16)  # a phone's: unknown, the largest
    return Pipeline(with_sensor_full_scale(config.pipeline, sensor), calibration=saved)


def with_sensor_full_scale(pipeline: PipelineSettings, sensor: SensorSettings
                           ) -> PipelineSettings:
    """``[pipeline]`` with the full scales the driver is configured for (``[sensor]``
    gyro_range_dps, accel_range_g), unless the pipeline's own settings name them: a reading at
    the full scale is then marked clipped at once, instead of once its plateau is recognised."""
    return dataclasses.replace(
        pipeline,
        gyro_full_scale_rad_s=pipeline.gyro_full_scale_rad_s
        or math.radians(sensor.gyro_range_dps),
        accel_full_scale_m_s2=pipeline.accel_full_scale_m_s2
        or sensor.accel_range_g * STANDARD_GRAVITY_M_S2)


def open_controls(config: RollerConfig, inbox: CommandInbox, *, simulate: bool) -> Controls:
    """The GPIO buttons, LED and buzzer (nothing opened when no pin is configured). Buttons
    queue commands (``start_pause``, ``next``) into ``inbox``. With ``simulate`` the pins are
    gpiozero's mock pins: no GPIO is touched on a laptop."""
    factory = None
    if simulate and config.gpio.any_pin:
        from gpiozero.pins.mock import MockFactory  # gpiozero's test seam, only when simulating

        factory = MockFactory()
    return Controls(config.gpio, pin_factory=factory,
                    on_start_pause=lambda: inbox.submit("start_pause", b"", "gpio"),
                    on_next=lambda: inbox.submit("next", b"", "gpio"))


def make_coach(config: RollerConfig, clock: Clock) -> Coach:
    """The coach with the configured routine; it draws the pipeline's go-slow band."""
    return Coach(load_routine(config.coach.routine), config.coach, clock,
                 speed_target_m_s=config.pipeline.target_speed_m_s,
                 speed_limit_m_s=config.pipeline.max_speed_m_s)


def open_history(config: RollerConfig, state_dir: Path) -> History | None:
    """The session history in the state directory, or None when ``[history] enabled = false``."""
    if not config.history.enabled:
        return None
    return History(config.history.path(state_dir))
